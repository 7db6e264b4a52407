"""QONNX interop: ternary and binary networks from QONNX (Brevitas, FINN) in, gxnor exports out.

:func:`import_model` reads a QONNX graph and writes an export in the format of docs/FORMAT.md,
so that ``gxnor rtl/sim/build/run`` work on it unchanged. :func:`to_qonnx` writes a gxnor
export as a QONNX graph that computes the same integers, for FINN / hls4ml users who want to
compare. The ``qonnx`` package (optional extra ``gxnor[qonnx]``) is imported here only, and
does the graph work: loading, shape inference, constant folding, transposes folded into the
weight quantizers (``cleanup_model``), and the executor the tests compare against.

How a graph maps onto the format
--------------------------------
The graph must be a chain from its one input to its one output. Walking it, the value on the
chain is always one of three things, and each node changes it in a way the integer form can
follow exactly:

* **input**: ``x = alpha * pixel + beta`` with scalars alpha, beta (the graph input is
  ``pixel * input_scale + input_offset``; scalar Mul/Div/Add/Sub and an input quantizer that
  maps the 256 pixel values affinely are absorbed);
* **accumulator**: after a MatMul/Gemm whose weights are ternary (``Quant``: 2 bits, signed,
  narrow range, zero point 0) or bipolar (``BipolarQuant``) with a per-tensor or
  per-output-channel scale s: ``y = A * acc + B`` per output, ``acc`` the integer product of
  the integer weights with the integer input (``A = alpha * s``, ``B = beta * s * sum(w)``).
  Bias Add/Sub, Mul/Div by constants and BatchNormalization update A and B;
* **activation**: a ternary ``Quant`` (2 bits, signed, narrow, zero point 0, scalar scale > 0,
  any rounding mode), a ``BipolarQuant`` or a ``MultiThreshold`` with 1 or 2 steps turns
  ``y`` into ``alpha * t`` with t in {-1, 0, +1}. Its steps, as conditions on y, become the
  layer's integer thresholds (:func:`gxnor.export.thresholds.fold`), exact for every integer
  accumulator in float64.

The chain ends in the accumulator of the last layer (optionally followed by Softmax,
LogSoftmax, ArgMax or TopK, which keep the arg-max): its ``A * acc + B`` become the fixed-point
class scores. Anything else (a ReLU, a 4-bit quantizer, two MatMuls without an activation
between them, per-channel scales on activations, a fork) is refused with an error that names
the node, before anything is written.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np

from gxnor.base import files, limits
from gxnor.base.errors import InputError, Unavailable

from . import exporter, format, thresholds

#: metadata keys of a QONNX file written by :func:`to_qonnx` (restored by the import)
META_SOURCE = "gxnor.source"
META_R = "gxnor.activation_r"
PRODUCER = "gxnor"
QONNX_DOMAIN = "qonnx.custom_op.general"
#: the arg-max of the last layer's outputs survives these nodes
ARGMAX_KEEPING = ("Softmax", "LogSoftmax", "ArgMax", "TopK")
#: nodes that do not change values (flattening a (1, C, H, W) image row-major, as fc expects)
PASS_THROUGH = ("Reshape", "Flatten", "Identity", "Dropout", "Squeeze", "Unsqueeze")
#: the steps of a ternary quantizer (scale 1, zero point 0, clipped to [-1, 1]) per rounding
#: mode, as (t_lo, lo_inclusive, t_hi, hi_inclusive): +1 when u > t_hi (>= if inclusive),
#: -1 when u < t_lo (<= if inclusive)
ROUNDING_STEPS = {
    "ROUND": (-0.5, False, 0.5, False),  # half to even: +-0.5 -> 0
    "HALF_EVEN": (-0.5, False, 0.5, False),
    "HALF_UP": (-0.5, True, 0.5, True),  # half away from zero
    "HALF_DOWN": (-0.5, False, 0.5, False),  # half towards zero
    "CEIL": (-1.0, True, 0.0, False),
    "FLOOR": (0.0, False, 1.0, True),
    "UP": (0.0, False, 0.0, False),  # away from zero: only 0 stays 0
    "DOWN": (-1.0, True, 1.0, True),  # towards zero
}


class QonnxError(InputError):
    """The QONNX graph is not one gxnor can run; the message names the file and the node."""


def _need_qonnx():
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as exc:
        raise Unavailable("QONNX support needs the optional extra: pip install "
                          f"'gxnor[qonnx]' ({exc.name} is missing)") from None


# ---------------------------------------------------------------------------------- import


@dataclass
class _Act:
    kind: str  # "ternary" | "binary"
    node: str
    t_lo: np.ndarray | float
    t_hi: np.ndarray | float
    lo_inclusive: bool
    hi_inclusive: bool
    r: float | None = None  # the step in units of the quantizer's scale (informative)


@dataclass
class _Layer:
    node: str  # the MatMul / Gemm
    w: np.ndarray  # (out, in) integer weights
    bipolar: bool  # weights from BipolarQuant (+-1)
    a: np.ndarray  # y = a * acc + b, float64 per output
    b: np.ndarray
    act: _Act | None = None


@dataclass
class Imported:
    """What :func:`read_model` found: the layers and the export built from them."""

    manifest: dict
    roms: list
    layers: list[_Layer]
    input_scale: float
    input_offset: float

    def table(self) -> str:
        rows = ["layer  matmul node          in -> out   weights  zeros  activation"]
        for i, ly in enumerate(self.layers):
            n_out, n_in = ly.w.shape
            act = f"{ly.act.kind} ({ly.act.node})" if ly.act else "scores"
            zeros = float(np.mean(ly.w == 0)) if ly.w.size else 0.0
            rows.append(f"{i:5d}  {ly.node[:18]:18s} {n_in:5d} -> {n_out:<5d} "
                        f"{'binary' if ly.bipolar else 'ternary':8s} {zeros:5.1%}  {act}")
        return "\n".join(rows)


def _cleanup(model):
    """qonnx's ``cleanup_model`` (shape inference, constant folding, transposes folded into
    the weight quantizers), without its notes about opsets and domains."""
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cleanup_model(model)


class _Graph:
    """The cleaned-up model and the lookups the walk needs."""

    def __init__(self, path: Path):
        _need_qonnx()
        import onnx
        from qonnx.core.modelwrapper import ModelWrapper

        self.path = path
        if not path.is_file():
            raise QonnxError(f"{path}: no such file")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, ValueError, ...
            raise QonnxError(f"{path}: not an ONNX model ({exc})") from None
        # qonnx keeps metadata on the graph; ONNX tools put it on the model
        self.meta = {p.key: p.value for p in (*proto.metadata_props,
                                              *proto.graph.metadata_props)}
        try:
            self.model = _cleanup(ModelWrapper(proto))
        except Exception as exc:
            raise QonnxError(f"{path}: qonnx cannot read the graph ({type(exc).__name__}: "
                             f"{exc})") from None
        g = self.model.graph
        inits = {t.name for t in g.initializer}
        inputs = [i for i in g.input if i.name not in inits]
        if len(inputs) != 1 or len(g.output) != 1:
            raise QonnxError(f"{path}: the graph has {len(inputs)} inputs and {len(g.output)} "
                             "outputs; gxnor imports one image in, one score vector out")
        self.input = inputs[0].name
        self.output = g.output[0].name

    def const(self, node, idx: int, what: str) -> np.ndarray:
        name = node.input[idx] if idx < len(node.input) else ""
        value = self.model.get_initializer(name) if name else None
        if value is None:
            raise QonnxError(f"{self.path}: node {node.name!r} ({node.op_type}): its {what} "
                             f"({name or 'missing'}) is not a constant")
        return np.asarray(value, np.float64)

    def attr(self, node, name: str, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def fail(self, node, why: str) -> NoReturn:
        raise QonnxError(f"{self.path}: node {node.name!r} ({node.op_type}): {why}")

    def shape(self, tensor: str) -> list[int] | None:
        s = self.model.get_tensor_shape(tensor)
        return None if s is None else [int(d) for d in s]


def _scalar(g: _Graph, node, value: np.ndarray, what: str) -> float:
    if value.size != 1:
        g.fail(node, f"{what} has shape {list(value.shape)}; only a scalar works here (a "
               "per-channel factor on an image or an activation does not keep the integers)")
    return float(value.reshape(()))


def _per_output(g: _Graph, node, value: np.ndarray, n_out: int, what: str) -> np.ndarray:
    """A constant that broadcasts over (1, n_out) as one value per output."""
    if value.size == 1:
        return np.full(n_out, float(value.reshape(())))
    if value.size == n_out and value.shape[-1] == n_out:
        return value.reshape(n_out)
    g.fail(node, f"{what} has shape {list(value.shape)}, not one value per output ({n_out})")


class _Quant(NamedTuple):
    """A ``Quant`` node's constants and attributes."""

    scale: np.ndarray
    zero_point: np.ndarray
    bits: np.ndarray
    signed: int
    narrow: int
    mode: str


def _quant(g: _Graph, node) -> _Quant:
    return _Quant(g.const(node, 1, "scale"), g.const(node, 2, "zero point"),
                  g.const(node, 3, "bit width"), int(g.attr(node, "signed", 1)),
                  int(g.attr(node, "narrow", 0)),
                  str(g.attr(node, "rounding_mode", "ROUND")).upper())


def _quant_kind(g: _Graph, node, q: _Quant, what: str) -> str:
    """"ternary" (2 bits, signed, narrow range) or "binary" (a signed 1-bit Quant, which qonnx
    runs as bipolar) for the ``what`` ("weight", "activation") quantizer ``q``, whose scale
    must be positive and zero point 0; anything else fails naming the node."""
    if np.any(q.zero_point != 0):
        g.fail(node, f"the {what} quantizer has a nonzero zero point")
    if np.any(q.scale <= 0):
        g.fail(node, f"the {what} scale is not positive")
    b = float(q.bits.reshape(-1)[0])
    if q.bits.size == 1 and q.signed and (b == 1 or (b == 2 and q.narrow)):
        return "binary" if b == 1 else "ternary"
    g.fail(node, f"{what} quantizer of {b:g} bits (signed={q.signed}, narrow={q.narrow}): "
           f"gxnor runs ternary (2 bits, signed, narrow range) or binary {what}s")


def _weights(g: _Graph, node, idx: int, transpose: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """The integer weights (out, in), the scale per output and whether they are bipolar, from
    input ``idx`` of a MatMul/Gemm: a Quant or BipolarQuant of a constant (cleanup has folded
    transposes into it), or a constant that already holds -1/0/+1."""
    from qonnx.custom_op.general.bipolar_quant import binary_quant
    from qonnx.custom_op.general.intquant import int_quant

    name = node.input[idx]
    prod = g.model.find_producer(name)
    bipolar = False
    if prod is None:
        wf = g.const(node, idx, "weight input")
        scale = np.ones_like(wf)
        ints = wf
        if not np.all(np.isin(ints, (-1.0, 0.0, 1.0))):
            g.fail(node, "its weights are a plain constant that is not all -1/0/+1; quantize "
                   "them with a 2-bit signed narrow Quant (ternary) or a BipolarQuant")
    elif prod.op_type == "Quant":
        wf = g.const(prod, 0, "weights")
        q = _quant(g, prod)
        bipolar = _quant_kind(g, prod, q, "weight") == "binary"
        scale = np.broadcast_to(q.scale, wf.shape)
        ints = np.rint(int_quant(wf, *q) / scale)
    elif prod.op_type == "BipolarQuant":
        wf = g.const(prod, 0, "weights")
        s = g.const(prod, 1, "scale")
        if np.any(s <= 0):
            g.fail(prod, "the weight scale is not positive")
        bipolar = True
        scale = np.broadcast_to(s, wf.shape)
        ints = np.rint(binary_quant(wf, s) / scale)
    else:
        g.fail(node, f"its weights come from a {prod.op_type} node ({prod.name!r}); gxnor "
               "reads weights from a Quant or BipolarQuant of a constant")
    if ints.ndim != 2:
        g.fail(node, f"weights of shape {list(ints.shape)}: only fully connected layers "
               "(2-D weights) import so far")
    # MatMul(x, W) has W as (in, out); Gemm with transB has (out, in)
    if not transpose:
        ints, scale = ints.T, np.asarray(scale).T
    per_out = np.asarray(scale)[:, :1]
    if not np.allclose(scale, per_out, rtol=0, atol=0):
        g.fail(node, "its weight scale varies along the inputs; gxnor needs one scale per "
               "output (per tensor or per output channel)")
    return ints.astype(np.int8), per_out.reshape(-1).astype(np.float64), bipolar


def _activation(g: _Graph, node, n_out: int) -> tuple[_Act, float]:
    """The steps of an activation quantizer on y, and the scale alpha of its output t."""
    op = node.op_type
    if op == "Quant":
        q = _quant(g, node)
        s = _scalar(g, node, q.scale, "the activation scale")
        if _quant_kind(g, node, q, "activation") == "binary":
            return _Act("binary", node.name, 0.0, 0.0, False, True), s
        if q.mode not in ROUNDING_STEPS:
            g.fail(node, f"rounding mode {q.mode!r} is unknown")
        t_lo, lo_inc, t_hi, hi_inc = ROUNDING_STEPS[q.mode]
        return _Act("ternary", node.name, t_lo * s, t_hi * s, lo_inc, hi_inc, r=t_hi), s
    if op == "BipolarQuant":
        s = _scalar(g, node, g.const(node, 1, "scale"), "the activation scale")
        if s <= 0:
            g.fail(node, f"activation scale {s:g} is not positive")
        return _Act("binary", node.name, 0.0, 0.0, False, True), s
    # MultiThreshold: out = out_scale * #(steps with y >= step) + out_bias
    t = g.const(node, 1, "thresholds")
    if t.ndim != 2 or t.shape[0] not in (1, n_out) or t.shape[1] not in (1, 2):
        g.fail(node, f"thresholds of shape {list(t.shape)}: gxnor runs 1 step (binary) or 2 "
               f"steps (ternary) per channel, for 1 or {n_out} channels")
    out_scale = float(g.attr(node, "out_scale", 1.0))
    out_bias = float(g.attr(node, "out_bias", 0.0))
    t = np.broadcast_to(t, (n_out, t.shape[1]))
    if t.shape[1] == 2:
        if not math.isclose(out_bias, -out_scale) or out_scale <= 0:
            g.fail(node, f"out_scale {out_scale:g}, out_bias {out_bias:g}: the outputs are not "
                   "-s, 0, +s (ternary)")
        if np.any(t[:, 0] > t[:, 1]):
            g.fail(node, "its thresholds are not sorted per channel")
        return _Act("ternary", node.name, t[:, 0], t[:, 1], False, True), out_scale
    if not math.isclose(out_bias, -out_scale / 2) or out_scale <= 0:
        g.fail(node, f"out_scale {out_scale:g}, out_bias {out_bias:g}: the outputs are not -s, "
               "+s (binary)")
    return _Act("binary", node.name, t[:, 0], t[:, 0], False, True), out_scale / 2


def _input_quant(g: _Graph, node, alpha: float, beta: float) -> tuple[float, float]:
    """A quantizer on the image: fine if it maps the 256 pixel values affinely (a
    BipolarQuant never does: it has two output values)."""
    from qonnx.custom_op.general.intquant import int_quant

    def refuse():
        g.fail(node, "the input quantizer does not pass the 256 pixel values through (is the "
               "input scale right? see --input-scale); gxnor's first layer reads 8-bit pixels")

    if node.op_type != "Quant":
        refuse()
    q = _quant(g, node)
    for value, what in zip(q[:3], ("scale", "zero point", "bit width"), strict=True):
        _scalar(g, node, value, f"the input quantizer's {what}")
    x = (alpha * np.arange(256) + beta).astype(np.float32)
    out = np.asarray(int_quant(x, *(v.astype(np.float32) for v in q[:3]), *q[3:]),
                     np.float64).reshape(-1)
    a2, b2 = (out[255] - out[0]) / 255.0, out[0]
    if a2 == 0 or not np.allclose(out, a2 * np.arange(256) + b2, rtol=1e-6,
                                  atol=1e-9 * abs(a2)):
        refuse()
    return a2, b2


def _walk(g: _Graph, alpha: float, beta: float) -> list[_Layer]:
    """Follow the chain from the graph input to its output (see the module docstring)."""
    phase = "input"  # "input" | "acc" | "act" | "end"
    layers: list[_Layer] = []
    cur = g.input
    visited = set()
    while cur != g.output and phase != "end":
        consumers = g.model.find_consumers(cur)
        if len(consumers) != 1:
            raise QonnxError(f"{g.path}: tensor {cur!r} feeds {len(consumers)} nodes; gxnor "
                             "imports a chain of layers (no forks, no skip connections)")
        node = consumers[0]
        visited.add(node.name)
        op = node.op_type
        data_idx = list(node.input).index(cur)
        ly = layers[-1] if layers else None
        if op in PASS_THROUGH:
            pass
        elif op in ("MatMul", "Gemm"):
            if phase == "acc":
                g.fail(node, "two linear layers follow each other without an activation")
            if data_idx != 0 or (op == "Gemm" and int(g.attr(node, "transA", 0))):
                g.fail(node, "the activations must be its first input, not transposed")
            trans_b = op == "Gemm" and bool(int(g.attr(node, "transB", 0)))
            w, s, bipolar = _weights(g, node, 1, trans_b)
            a = alpha * s
            b = beta * s * w.sum(axis=1, dtype=np.float64)
            if op == "Gemm":
                a = a * float(g.attr(node, "alpha", 1.0))
                b = b * float(g.attr(node, "alpha", 1.0))
                if len(node.input) > 2 and node.input[2]:
                    c = g.const(node, 2, "bias")
                    b = b + float(g.attr(node, "beta", 1.0)) * _per_output(
                        g, node, c, w.shape[0], "the bias")
            layers.append(_Layer(node.name, w, bipolar, a, b))
            phase = "acc"
        elif op in ("Add", "Sub", "Mul", "Div"):
            c = g.const(node, 1 - data_idx, "other input")
            if phase == "acc":
                c = _per_output(g, node, c, ly.w.shape[0], "the constant")
                if op == "Add":
                    ly.b = ly.b + c
                elif op == "Sub":
                    ly.a, ly.b = (ly.a, ly.b - c) if data_idx == 0 else (-ly.a, c - ly.b)
                elif op == "Mul":
                    ly.a, ly.b = ly.a * c, ly.b * c
                elif data_idx == 0:
                    ly.a, ly.b = ly.a / c, ly.b / c
                else:
                    g.fail(node, "divides by the accumulator")
            else:
                c = _scalar(g, node, c, "the constant")
                if op in ("Add", "Sub") and phase == "act":
                    g.fail(node, "adds a constant to an activation: the next layer's inputs "
                           "would not be -1/0/+1 times a scale")
                if op == "Add":
                    beta += c
                elif op == "Sub":
                    alpha, beta = (alpha, beta - c) if data_idx == 0 else (-alpha, c - beta)
                elif op == "Mul":
                    alpha, beta = alpha * c, beta * c
                elif data_idx == 0:
                    alpha, beta = alpha / c, beta / c
                else:
                    g.fail(node, "divides by the activations")
        elif op == "BatchNormalization":
            if phase != "acc":
                g.fail(node, "batch-norm must follow a MatMul/Gemm (before the activation)")
            n = ly.w.shape[0]
            gamma, bias, mean, var = (
                _per_output(g, node, g.const(node, i, w), n, w)
                for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
            if np.any(var < 0):
                g.fail(node, "a variance is negative")
            inv = gamma / np.sqrt(var + float(g.attr(node, "epsilon", 1e-5)))
            ly.a, ly.b = ly.a * inv, (ly.b - mean) * inv + bias
        elif op in ("Quant", "BipolarQuant") and phase == "input":
            alpha, beta = _input_quant(g, node, alpha, beta)
        elif op in ("Quant", "BipolarQuant", "MultiThreshold"):
            if phase != "acc":
                g.fail(node, "an activation quantizer must follow a MatMul/Gemm")
            if op == "MultiThreshold" and g.attr(node, "data_layout", "NCHW") not in (
                    "NCHW", "NC"):
                g.fail(node, "only channels-first data layouts are supported")
            ly.act, alpha = _activation(g, node, ly.w.shape[0])
            beta = 0.0
            phase = "act"
        elif op in ARGMAX_KEEPING:
            if phase != "acc":
                g.fail(node, "the graph must end in the last layer's scores")
            phase = "end"
        elif op in ("Conv", "MaxPool"):
            g.fail(node, "convolution and pooling layers do not import yet (the accelerator "
                   "runs fully connected layers; conv import follows its convolution engine)")
        else:
            g.fail(node, "this operation is not part of a ternary/binary network gxnor runs")
        if phase != "end":
            cur = node.output[0]
    if phase not in ("end", "acc"):
        where = "an activation" if phase == "act" else "its input"
        raise QonnxError(f"{g.path}: the graph ends in {where}; gxnor's last layer is a "
                         "MatMul/Gemm whose outputs are the class scores")
    # every node is on the chain, a weight quantizer of it, or after its end
    for node in g.model.graph.node:
        if node.name in visited or node.op_type in ARGMAX_KEEPING:
            continue
        feeds = [c.name for o in node.output for c in g.model.find_consumers(o)]
        if not any(f in visited for f in feeds) or node.op_type not in ("Quant", "BipolarQuant"):
            g.fail(node, "is not on the chain from the input to the output")
    if not layers:
        raise QonnxError(f"{g.path}: the graph has no MatMul/Gemm layer")
    return layers


def _input_shape(g: _Graph, n_in: int, shape_opt, dataset: str | None) -> tuple[int, int, int]:
    if shape_opt is not None:
        shape = tuple(shape_opt)
    else:
        dims = [d for d in (g.shape(g.input) or [])][1:]  # drop the batch axis
        if len(dims) == 3:
            shape = tuple(dims)
        elif len(dims) == 2:
            shape = (1, *dims)
        elif dataset == "mnist" or n_in == 28 * 28:
            shape = (1, 28, 28)
        elif dataset == "digits" or n_in == 8 * 8:
            shape = (1, 8, 8)
        else:
            shape = (1, 1, n_in)
    if len(shape) != 3 or math.prod(shape) != n_in:
        raise QonnxError(f"{g.path}: input shape {list(shape)} does not hold the {n_in} inputs "
                         "of the first layer (see --input-shape)")
    return tuple(int(d) for d in shape)


def read_model(path: str | Path, lanes: int = 8, input_scale: float | None = None,
               input_offset: float = 0.0, dataset: str | None = None,
               input_shape=None) -> Imported:
    """Read and check a QONNX model; build (but do not write) the export."""
    path = Path(path)
    limits.LANES.check(lanes)
    g = _Graph(path)
    from qonnx.core.datatype import DataType

    if input_scale is None:  # a graph that declares its input as UINT8 reads raw pixels
        input_scale = 1.0 if g.model.get_tensor_datatype(g.input) == DataType["UINT8"] \
            else 1.0 / 255.0
    layers = _walk(g, input_scale, input_offset)
    n_bits = 0 if all(ly.bipolar for ly in layers) else 1
    acts = [ly.act for ly in layers[:-1]]
    act_kind = "binary" if all(a.kind == "binary" for a in acts) else "ternary"
    shape = _input_shape(g, layers[0].w.shape[1], input_shape, dataset)
    entries, roms = [], []
    n_prev = math.prod(shape)
    for i, ly in enumerate(layers):
        n_out, n_in = ly.w.shape
        if n_in != n_prev:
            g.fail(g.model.get_node_from_name(ly.node),
                   f"has {n_in} inputs, the previous layer gives {n_prev}")
        entry, m = exporter.layer_entry(i, "fc", ly.w, n_bits, lanes, roms, **{"in": n_in,
                                                                              "out": n_out})
        try:
            if ly.act is not None:
                flip, lo, hi = thresholds.fold(ly.a, ly.b, ly.act.t_lo, ly.act.t_hi, m,
                                               ly.act.lo_inclusive, ly.act.hi_inclusive)
                entry["output"] = exporter.hidden_output(act_kind, flip, lo, hi, m)
            else:
                entry["output"] = exporter.score_output(ly.a, ly.b, m)
        except ValueError as exc:
            raise QonnxError(f"{path}: layer {i} ({ly.node}): {exc}") from None
        entries.append(entry)
        n_prev = n_out
    meta_r = g.meta.get(META_R)
    r = float(meta_r) if meta_r is not None else next(
        (a.r for a in acts if a.r is not None), 0.0)
    if META_SOURCE in g.meta:  # a gxnor export written as QONNX: keep its provenance
        source = json.loads(g.meta[META_SOURCE])
    else:
        config = {"imported_from": "qonnx", "input_scale": input_scale,
                  "input_offset": input_offset}
        name = dataset or {(1, 28, 28): "mnist", (1, 8, 8): "digits"}.get(shape)
        if name:
            config["dataset"] = name
        source = {"checkpoint": path.name, "sha256": exporter.sha256_file(path),
                  "config": config}
    manifest = exporter.make_manifest(source, shape, n_bits, act_kind, r, lanes, entries)
    return Imported(manifest, roms, layers, input_scale, input_offset)


def import_model(path: str | Path, out: str | Path, **options) -> tuple[Path, Imported]:
    """``gxnor import``: a QONNX model -> an export folder (written atomically)."""
    files.check(out, exporter.KIND, [path])
    imp = read_model(path, **options)
    written = exporter.write_export(imp.manifest, imp.roms, Path(out), inputs=[path])
    format.load(written)  # the reader's checks, as every later stage will run them
    return written, imp


def parse_number(text: str) -> float:
    """``0.5``, ``1/255``: a float for --input-scale / --input-offset."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{text!r} is not a number (e.g. 0.5 or 1/255)") from None
    if not math.isfinite(value):
        raise InputError(f"{text!r} is not a finite number")
    return value


# ---------------------------------------------------------------------------------- export

#: float32 holds every integer below 2^24 exactly: the QONNX graph computes the same integers
FLOAT32_EXACT = 2**24


def is_gxnor_qonnx(path: Path) -> bool:
    """A file :func:`to_qonnx` wrote (``--qonnx`` may replace only such a file)."""
    try:
        import onnx

        return onnx.load(str(path), load_external_data=False).producer_name == PRODUCER
    except Exception:
        return False


def check_target(path: str | Path) -> Path:
    """The checks of :func:`to_qonnx`'s output file, without writing (run them first)."""
    _need_qonnx()
    return files.check_file(path, may_replace=is_gxnor_qonnx, what="QONNX file")


def to_qonnx(export_dir: str | Path, path: str | Path) -> Path:
    """Write the export as a QONNX graph with the same integer arithmetic.

    Per layer: ``MatMul`` with the integer weights through a ``Quant`` (2 bits, signed, narrow,
    scale 1) or a ``BipolarQuant``; a hidden layer then maps its thresholds (flip, lo, hi) to
    ``y = (v - m) * g`` with m = (lo + hi) / 2 and g = 1 / (hi - lo - 1) (2 when hi = lo + 1),
    v = -acc for flipped neurons, and a ternary ``Quant`` (scale 1, round half to even) or a
    ``BipolarQuant`` of y gives exactly the export's -1/0/+1; the last layer's ``Mul``/``Add``
    give ``score / 2^frac_bits``. All values are integers (or halves, or exact power-of-two
    fractions of integers) below 2^24, so float32 evaluation is exact; an export outside that
    range is refused. The input is the raw pixel value (0..255, annotated UINT8)."""
    _need_qonnx()
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    target = check_target(path)
    exp = format.load(export_dir)
    if any(ly.type != "fc" for ly in exp.layers):
        raise QonnxError(f"{exp.dir}: conv layers do not export to QONNX yet")
    for ly in exp.layers:
        out = ly.spec["output"]
        if ly.spec["acc_max_abs"] >= FLOAT32_EXACT or (
                ly.is_last and out["score_bits"] > thresholds.signed_bits(FLOAT32_EXACT - 1)):
            raise QonnxError(f"{exp.dir}: layer {ly.index}: its accumulators or scores need "
                             "more than 24 bits; float32 QONNX cannot hold them exactly")
    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, np.shape(value),
                                        np.asarray(value, np.float32).reshape(-1).tolist()))
        return name

    def node(op: str, ins: list[str], out: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, domain=domain, **attrs))
        return out

    one, zero, two = const("one", 1.0), const("zero", 0.0), const("two", 2.0)

    def quant(x: str, out: str, binary: bool) -> str:
        if binary:
            return node("BipolarQuant", [x, one], out, QONNX_DOMAIN)
        return node("Quant", [x, one, zero, two], out, QONNX_DOMAIN, signed=1, narrow=1,
                    rounding_mode="ROUND")

    c, h, w = exp.input_shape
    x = node("Flatten", ["pixels"], "flat", axis=1)
    for ly in exp.layers:
        i = ly.index
        wq = quant(const(f"w{i}", ly.weights.T.astype(np.float32)), f"w{i}_q", exp.n_bits == 0)
        acc = node("MatMul", [x, wq], f"acc{i}")
        if ly.is_last:
            frac = ly.spec["output"]["frac_bits"]
            y = node("Mul", [acc, const(f"coef{i}", ly.coef * 2.0**-frac)], f"scaled{i}")
            x = node("Add", [y, const(f"offset{i}", ly.offset * 2.0**-frac)], "scores")
        else:
            lo, hi = ly.lo.astype(np.float64), ly.hi.astype(np.float64)
            d = hi - lo
            g = np.where(d == 1, 2.0, 1.0 / np.maximum(d - 1, 1))
            sign = 1.0 - 2.0 * ly.flip
            centred = node("Add", [acc, const(f"centre{i}", -(lo + hi) / 2 * sign)],
                           f"centred{i}")
            y = node("Mul", [centred, const(f"gain{i}", g * sign)], f"y{i}")
            x = quant(y, f"act{i}", exp.activation == "binary")
    graph = helper.make_graph(
        nodes, "gxnor", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                       [1, c, h, w])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT,
                                       [1, exp.manifest["num_classes"]])], inits)
    model = _cleanup(ModelWrapper(qonnx_make_model(graph, producer_name=PRODUCER)))
    model.set_metadata_prop(META_SOURCE, json.dumps(exp.manifest["source"]))
    model.set_metadata_prop(META_R, repr(float(exp.manifest["activation"]["r"])))
    model.set_tensor_datatype(model.graph.input[0].name, DataType["UINT8"])
    return files.write_file(target, model.model.SerializeToString(), may_replace=is_gxnor_qonnx,
                            what="QONNX file")


def run_qonnx(path: str | Path, images: np.ndarray) -> np.ndarray:
    """QONNX's own executor on a batch of images (as the graph's input expects them):
    the graph output for every image, (N, classes)."""
    _need_qonnx()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    model = _cleanup(ModelWrapper(str(path)))
    model = model.transform(ChangeBatchSize(len(images))).transform(InferShapes())
    name = model.graph.input[0].name
    x = np.asarray(images, np.float32).reshape(model.get_tensor_shape(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = execute_onnx(model, {name: x})
    return np.asarray(out[model.graph.output[0].name])
