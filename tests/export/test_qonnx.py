"""QONNX interop (export/qonnx.py): import from Brevitas / hand-built QONNX graphs, export ours.

The oracles are the other side's own evaluators: Brevitas (torch) for a model it trained, and
QONNX's executor (``qonnx.core.onnx_exec``) for every graph; gxnor's golden model must agree
with them on every image, and on every hidden activation where the graph exposes it.
"""

from __future__ import annotations

import filecmp

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gxnor.cli import main
from gxnor.export import qonnx
from gxnor.model import data
from gxnor.model.random_net import random_images
from gxnor.sim import golden
from gxnor.verify import brevitas_mlp as bm

DOMAIN = qonnx.QONNX_DOMAIN


def _same_folders(a, b) -> list[str]:
    """Names of files that differ between two folders (or exist in one only)."""
    cmp = filecmp.dircmp(a, b)
    bad = cmp.left_only + cmp.right_only + cmp.funny_files
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return bad + mismatch + errors


# ------------------------------------------------------------------ our export -> QONNX -> back


@pytest.mark.parametrize("n_bits,act_bits,lanes,seed", [
    (1, 1, 8, 0),  # ternary weights and activations
    (1, 1, 5, 1),  # lanes off the width grid
    (0, 0, 8, 2),  # binary weights and activations: BipolarQuant both ways
    (1, 0, 3, 3),  # ternary weights, binary activations
])
def test_round_trip_is_identical_and_qonnx_computes_the_same_integers(
        tmp_path, random_export, n_bits, act_bits, lanes, seed):
    exp = random_export([23, 17, 7], lanes, input_shape=(1, 6, 5), seed=seed, n_bits=n_bits,
                        act_bits=act_bits, zero_scale=0.1, special_columns=0.1)
    onnx_file = tmp_path / "net.onnx"
    assert main(["export", str(exp), "--qonnx", str(onnx_file)]) == 0
    back = tmp_path / "back"
    assert main(["import", str(onnx_file), "--out", str(back), "--lanes", str(lanes)]) == 0
    assert _same_folders(exp, back) == []
    # QONNX's executor on the exported graph gives the golden scores exactly
    net = golden.Network(exp)
    images = random_images(300, (1, 6, 5), density=0.4, seed=seed)
    images[:3] = 0
    images[3] = 255
    res = net.run(images)
    scores = qonnx.run_qonnx(onnx_file, images)
    frac = net.layers[-1].spec["output"]["frac_bits"]
    assert np.array_equal(scores.astype(np.float64) * 2.0**frac, res.scores)
    assert np.array_equal(np.argmax(scores, axis=1), res.classes)


def test_export_qonnx_refuses_a_file_it_did_not_write(tmp_path, random_export, capsys):
    exp = random_export([9, 4], 4)
    target = tmp_path / "notes.onnx"
    target.write_text("mine")
    assert main(["export", str(exp), "--qonnx", str(target)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert target.read_text() == "mine"
    # its own file it replaces; an export given as run dir needs no --out
    own = tmp_path / "own.onnx"
    assert main(["export", str(exp), "--qonnx", str(own)]) == 0
    assert main(["export", str(exp), "--qonnx", str(own)]) == 0
    assert qonnx.is_gxnor_qonnx(own)
    # a training run without --out: nothing to convert
    assert main(["export", str(exp.parent / "run"), "--qonnx", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


# ------------------------------------------------------------------ Brevitas -> gxnor


@pytest.mark.slow
def test_brevitas_ternary_mlp_imports_bit_exactly(tmp_path):
    """A ternary MLP defined and trained with Brevitas on the digits set, exported with
    Brevitas' export_qonnx, imported with ``gxnor import``: the golden model's classes equal
    Brevitas' and QONNX's executor's on every test image."""
    ds = data.load_digits()
    model = bm.make((64, 64, 10), seed=0)
    bm.train(model, ds.train.images, ds.train.labels, epochs=20, batch=32)
    theirs = bm.predict(model, ds.test.images)
    assert np.mean(theirs == ds.test.labels) > 0.9  # it learned something
    path = bm.export(model, tmp_path / "brevitas.onnx", image_shape=(8, 8))
    out = tmp_path / "export"
    assert main(["import", str(path), "--out", str(out)]) == 0
    net = golden.Network(out)
    assert net.export.dataset == "digits" and net.input_shape == (1, 8, 8)
    ours = net.run(ds.test.images).classes
    executor = np.argmax(qonnx.run_qonnx(path, ds.test.images.astype(np.float32) / 255), 1)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(ours, executor)


# ------------------------------------------------------------------ hand-built QONNX graphs


class GraphBuilder:
    """A QONNX graph as a list of nodes over a flat (1, n) input, for the cases Brevitas does
    not produce: every rounding mode, MultiThreshold, Gemm options, broken graphs."""

    def __init__(self, n_in: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = n_in
        self.x = "x"
        self.k = 0

    def const(self, value) -> str:
        self.k += 1
        name = f"c{self.k}"
        value = np.asarray(value, np.float32)
        self.inits.append(helper.make_tensor(name, TensorProto.FLOAT, value.shape,
                                             value.reshape(-1).tolist()))
        return name

    def op(self, op_type, inputs, domain="", **attrs) -> str:
        self.k += 1
        out = f"t{self.k}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.k}",
                                           domain=domain, **attrs))
        return out

    def quant(self, x, scale=1.0, bits=2.0, zp=0.0, signed=1, narrow=1, mode="ROUND"):
        return self.op("Quant", [x, self.const(scale), self.const(zp), self.const(bits)],
                       DOMAIN, signed=signed, narrow=narrow, rounding_mode=mode)

    def ternary(self, n_out, zeros=0.4):
        w = self.rng.choice([-1.0, 0.0, 1.0], size=(self.n, n_out),
                            p=[(1 - zeros) / 2, zeros, (1 - zeros) / 2])
        return w

    def matmul(self, n_out, scale=0.5, bits=2.0):
        w = self.ternary(n_out) * scale
        self.x = self.op("MatMul", [self.x, self.quant(self.const(w), scale, bits)])
        self.n = n_out
        return self.x

    def then(self, op_type, *consts, domain="", **attrs):
        self.x = self.op(op_type, [self.x, *[self.const(c) for c in consts]], domain, **attrs)
        return self.x

    def save(self, path, n_in):
        graph = helper.make_graph(
            self.nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                               [1, n_in])],
            [helper.make_tensor_value_info(self.x, TensorProto.FLOAT, [1, self.n])],
            self.inits)
        from qonnx.util.basic import qonnx_make_model

        onnx.save(qonnx_make_model(graph, producer_name="test"), str(path))
        return path


def _hidden_outputs(path, images, flat: int):
    """Every tensor of QONNX's executor for each image (batch 1, like the graph)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(path)).transform(InferShapes())
    return [execute_onnx(model, {"x": img.reshape(1, flat).astype(np.float32)},
                         return_full_exec_context=True) for img in images]


def _check_against_executor(path, builder_acts: list[str], output: str, tmp_path, n_in=16):
    """Import with the input = raw pixels; every hidden activation equals the executor's."""
    out = tmp_path / "imported"
    assert main(["import", str(path), "--out", str(out), "--input-scale", "1"]) == 0
    net = golden.Network(out)
    images = random_images(60, (1, 4, 4), density=0.6, seed=1)
    images = np.minimum(images, 3)  # small accumulators: many land exactly on the steps
    res = net.run(images)
    ctx = _hidden_outputs(path, images, n_in)
    for layer, name in enumerate(builder_acts):
        got = np.stack([c[name].reshape(-1) for c in ctx])
        scale = np.max(np.abs(got)) or 1.0
        assert np.array_equal(np.rint(got / scale).astype(np.int8),
                              res.out[layer].reshape(len(images), -1)), f"layer {layer}"
    final = np.stack([c[output].reshape(-1) for c in ctx])
    assert np.array_equal(np.argmax(final, axis=1), res.classes)
    return res


@pytest.mark.parametrize("mode", sorted(qonnx.ROUNDING_STEPS))
def test_every_rounding_mode_of_a_ternary_quant(tmp_path, mode):
    b = GraphBuilder(16, seed=3)
    b.matmul(12, scale=1.0)
    b.then("Mul", 0.25)  # acc / 4: ties at +-0.5 and +-1 for acc = +-2, +-4
    act = b.quant(b.x, scale=1.0, mode=mode)
    b.x = act
    b.matmul(5)
    path = b.save(tmp_path / "g.onnx", 16)
    _check_against_executor(path, [act], b.x, tmp_path)


@pytest.mark.parametrize("steps", [2, 1])
def test_multithreshold_per_channel_and_global(tmp_path, steps):
    b = GraphBuilder(16, seed=4)
    b.matmul(10, scale=0.5)
    t = np.sort(b.rng.integers(-4, 5, size=(10, steps)).astype(np.float32) * 0.5, axis=1)
    ob = -1.0 if steps == 2 else -0.5  # outputs -s, 0, +s or -s/2, +s/2 (s = out_scale)
    act = b.then("MultiThreshold", t, domain=DOMAIN, out_scale=1.0, out_bias=ob)
    b.matmul(8)
    g = b.then("MultiThreshold", np.array([[-1.0, 1.0]], np.float32), domain=DOMAIN,
               out_scale=2.0, out_bias=-2.0)  # one global pair of steps, outputs +-2
    b.matmul(4)
    path = b.save(tmp_path / "g.onnx", 16)
    _check_against_executor(path, [act, g], b.x, tmp_path)


def test_gemm_bias_batchnorm_and_scalar_ops(tmp_path):
    """Gemm with transB, alpha, beta and a bias; batch-norm with negative scales; Sub, Div and
    Add constants on both sides; an input Mul (the ToTensor scaling done in the graph)."""
    b = GraphBuilder(16, seed=5)
    b.then("Mul", 1 / 255)
    b.then("Sub", 0.0)
    w = b.ternary(9).T * 0.25  # (out, in) for transB
    bias = b.rng.normal(0, 0.01, 9)
    b.x = b.op("Gemm", [b.x, b.quant(b.const(w), 0.25), b.const(bias)], transB=1, alpha=2.0,
               beta=0.5)
    b.n = 9
    gamma = b.rng.uniform(-2, 2, 9)
    gamma[0] = 0.0  # a constant neuron
    b.then("BatchNormalization", gamma, b.rng.normal(0, 0.1, 9), b.rng.normal(0, 0.01, 9),
           b.rng.uniform(1e-4, 1e-3, 9), epsilon=1e-5)
    b.x = b.op("Sub", [b.const(np.full(9, 0.1)), b.x])  # c - y: the signs turn around
    b.then("Div", 0.5)
    act = b.quant(b.x, scale=0.5)
    b.x = act
    b.then("Mul", 3.0)  # a scalar scale on an activation
    b.matmul(6, scale=0.125)
    b.then("Add", b.rng.normal(0, 1, 6))
    b.x = b.op("Softmax", [b.x], axis=-1)
    path = b.save(tmp_path / "g.onnx", 16)
    images = random_images(80, (1, 4, 4), density=0.7, seed=2)
    out = tmp_path / "imported"
    assert main(["import", str(path), "--out", str(out), "--input-scale", "1",
                 "--input-shape", "1,4,4"]) == 0
    res = golden.Network(out).run(images)
    ctx = _hidden_outputs(path, images, 16)
    hidden = np.stack([c[act].reshape(-1) for c in ctx]) / 0.5
    assert np.array_equal(np.rint(hidden).astype(np.int8), res.out[0].reshape(80, -1))
    probs = np.stack([c[b.x].reshape(-1) for c in ctx])
    assert np.array_equal(np.argmax(probs, 1), res.classes)


# ------------------------------------------------------------------ what is refused


def _fork(b):
    y = b.matmul(6)
    b.x = b.op("Add", [y, b.op("Mul", [y, b.const(2.0)])])


BROKEN = {
    "relu": (lambda b: (b.matmul(6), b.then("Relu"), b.matmul(3)), "Relu"),
    "4-bit weights": (lambda b: (b.matmul(6, bits=4.0),), "4 bits"),
    "4-bit activations": (lambda b: (b.matmul(6), setattr(b, "x", b.quant(b.x, bits=4.0)),
                                     b.matmul(3)), "activation quantizer of 4 bits"),
    "zero point": (lambda b: (b.matmul(6), setattr(b, "x", b.quant(b.x, zp=0.5)),
                              b.matmul(3)), "zero point"),
    "per-channel activation scale": (
        lambda b: (b.matmul(6), setattr(b, "x", b.quant(b.x, scale=np.linspace(1, 2, 6))),
                   b.matmul(3)), "only a scalar"),
    "ends in an activation": (lambda b: (b.matmul(6), setattr(b, "x", b.quant(b.x))),
                              "ends in an activation"),
    "two matmuls in a row": (lambda b: (b.matmul(6), b.matmul(3)), "without an activation"),
    "fork": (_fork, "feeds 2 nodes"),
    "conv": (lambda b: (b.then("Unsqueeze", np.array([2, 3], np.int64)),), None),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_unsupported_graphs_are_refused_naming_the_node(tmp_path, capsys, case):
    build, message = BROKEN[case]
    b = GraphBuilder(16, seed=6)
    if case == "conv":  # a Conv layer: named, refused until the hardware has conv
        b.x = b.op("Reshape", [b.x, b.const(np.array([1, 1, 4, 4]))])
        b.inits[-1] = helper.make_tensor(b.inits[-1].name, TensorProto.INT64, [4], [1, 1, 4, 4])
        b.x = b.op("Conv", [b.x, b.quant(b.const(b.rng.choice([-1.0, 1.0], (2, 1, 3, 3))))])
        b.n = 8
        b.x = b.op("Flatten", [b.x], axis=1)
        message = "convolution"
    else:
        build(b)
    path = b.save(tmp_path / "bad.onnx", 16)
    out = tmp_path / "out"
    assert main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert "node '" in err or "tensor" in err or "ends" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_files_that_are_not_models_are_refused(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf at all" * 10)
    assert main(["import", str(junk), "--out", str(tmp_path / "o")]) == 2
    assert "junk.onnx" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_input_options_exit_2(tmp_path, random_export, capsys):
    exp = random_export([9, 4], 4)
    path = tmp_path / "n.onnx"
    qonnx.to_qonnx(exp, path)
    for opts in (["--input-scale", "x"], ["--input-scale", "1/0"], ["--input-shape", "1,2"],
                 ["--lanes", "0"]):
        with pytest.raises(SystemExit) as exc:  # argparse's own exit 2
            main(["import", str(path), "--out", str(tmp_path / "o"), *opts])
        assert exc.value.code == 2, opts
    # a shape that does not hold the first layer's inputs
    assert main(["import", str(path), "--out", str(tmp_path / "o"), "--input-shape",
                 "2,4,4"]) == 2
    assert "does not hold the 16 inputs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
