"""The export format (docs/FORMAT.md): its constants, its reader and its validator.

:mod:`.exporter` writes exports; everything that reads one goes through :func:`load`: the
golden model, the RTL generator, the board builds, the host runtime and the simulators. The
reader checks every field of ``manifest.json`` for presence, type and range, the consistency
between fields (shapes from layer to layer, ROM geometry, accumulator and threshold widths
from the weights, score widths from the coefficients), the SHA-256 and size of every ROM file,
that each ``.hex`` holds the same words as its ``.bin``, and the weight codes themselves, before
any stage uses the export. Every error names the file, the layer and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gxnor.base import limits
from gxnor.base.errors import InputError
from gxnor.model import zn

from . import codes, thresholds

FORMAT = "gxnor-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PIXEL_BITS = 8
TIE_BREAK = "lowest class index"
ACTIVATIONS = ("ternary", "binary")
LAYER_TYPES = ("fc", "conv")
HASH = re.compile(r"^[0-9a-f]{64}$")


def input_kind(index: int) -> str:
    """A layer's ``input``: raw pixels for layer 0, -1/0/+1 after."""
    return "pixel8" if index == 0 else "ternary"


def acc_bound(index: int, weights: np.ndarray) -> int:
    """``acc_max_abs`` of layer ``index`` with integer weights (out, fan-in): fan-in x
    max|w| x max|input| (255 for the pixels of layer 0, 1 after), at least 1."""
    max_in = 2**PIXEL_BITS - 1 if index == 0 else 1
    return max(weights.shape[1] * int(np.abs(weights).max(initial=0)) * max_in, 1)


class ExportFormatError(InputError):
    """The export folder is missing something, was altered, or contradicts itself; the message
    names the file, the layer and the field."""


@dataclass
class Layer:
    """One layer of an export, checked and decoded."""

    index: int
    type: str  # "fc" | "conv"
    n_in: int  # fan-in per output (conv: C * k * k)
    n_out: int  # outputs (conv: output channels)
    weights: np.ndarray  # (n_out, n_in) int8 integer weights
    spec: dict  # the manifest's entry for the layer
    rom: np.ndarray  # (words, word_bytes) uint8, as in the .bin file
    flip: np.ndarray | None = None  # hidden layers: per-neuron thresholds
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    coef: np.ndarray | None = None  # last layer: fixed-point class scores
    offset: np.ndarray | None = None

    @property
    def is_last(self) -> bool:
        return self.spec["output"]["kind"] == "scores"

    @property
    def inputs(self) -> int:
        """The layer's input activations (its most events): fc its fan-in, conv its map."""
        return int(np.prod(self.spec["in_shape"])) if self.type == "conv" else self.n_in

    def rom_words(self) -> list[int]:
        """The ROM image as integers, one per word (lane 0 in the low bits)."""
        return [int.from_bytes(row.tobytes(), "little") for row in self.rom]

    def words_for(self, lanes: int, n_bits: int) -> list[int]:
        """ROM words for an array of ``lanes`` lanes: the export's own image when the lane
        counts match, else the same weights packed by the exporter's rules for ``lanes``."""
        if lanes == self.spec["rom"]["lanes"]:
            return self.rom_words()
        data = codes.pack_rom(codes.encode(codes.rom_lanes(self.weights, lanes), n_bits),
                              codes.code_bits(n_bits))
        return [int.from_bytes(row.tobytes(), "little") for row in data]


@dataclass
class Export:
    """A checked export: the manifest and its decoded layers."""

    dir: Path
    manifest: dict
    lanes: int
    n_bits: int
    input_shape: tuple[int, int, int]
    activation: str
    layers: list[Layer]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def dataset(self) -> str | None:
        """The dataset the network was trained on (``source.config.dataset``), if named."""
        name = self.manifest["source"]["config"].get("dataset")
        return name if isinstance(name, str) else None


# ---- field checks -----------------------------------------------------------------------
class _Checker:
    """Field access that names the file and the field in every error."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise ExportFormatError(f"{self.path}: {where}: {problem}")

    def get(self, obj: dict, key: str, where: str):
        if not isinstance(obj, dict):
            self.fail(where, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            self.fail(f"{where}.{key}" if where else key, "missing")
        return obj[key]

    def obj(self, obj, key, where) -> dict:
        v = self.get(obj, key, where)
        if not isinstance(v, dict):
            self.fail(_at(where, key), f"expected an object, got {_show(v)}")
        return v

    def int_(self, obj, key, where, lo=None, hi=None) -> int:
        v = self.get(obj, key, where)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(_at(where, key), f"expected an integer, got {_show(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(_at(where, key), f"{v} is outside {lo}..{hi}")
        return v

    def str_(self, obj, key, where, choices=None) -> str:
        v = self.get(obj, key, where)
        if not isinstance(v, str):
            self.fail(_at(where, key), f"expected a string, got {_show(v)}")
        if choices is not None and v not in choices:
            self.fail(_at(where, key), f"{v!r} is not one of {list(choices)}")
        return v

    def number(self, obj, key, where) -> float:
        v = self.get(obj, key, where)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(_at(where, key), f"expected a finite number, got {_show(v)}")
        return float(v)

    def equal(self, obj, key, where, want):
        v = self.get(obj, key, where)
        if type(v) is not type(want) or v != want:
            self.fail(_at(where, key), f"is {_show(v)}, expected {want!r}")
        return v

    def ints(self, obj, key, where, n: int, lo: int, hi: int) -> np.ndarray:
        v = self.get(obj, key, where)
        if not isinstance(v, list):
            self.fail(_at(where, key), f"expected a list of {n} integers, got {_show(v)}")
        if len(v) != n:
            self.fail(_at(where, key), f"{len(v)} values, expected {n}")
        for j, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, int):
                self.fail(f"{_at(where, key)}[{j}]", f"expected an integer, got {_show(x)}")
            if not lo <= x <= hi:
                self.fail(f"{_at(where, key)}[{j}]", f"{x} is outside {lo}..{hi}")
        return np.asarray(v, np.int64)

    def file_name(self, obj, key, where) -> str:
        v = self.str_(obj, key, where)
        if v in ("", ".", "..") or Path(v).name != v or "\\" in v:
            self.fail(_at(where, key), f"{v!r} is not a plain file name in the export folder")
        return v


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(v) -> str:
    text = json.dumps(v) if isinstance(v, (dict, list, str, int, float, bool, type(None))) \
        else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- the reader -------------------------------------------------------------------------
def load(export_dir: str | Path) -> Export:
    """Read and check the export in ``export_dir``; raises :class:`ExportFormatError`."""
    folder = Path(export_dir)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ExportFormatError(f"{mpath}: missing (not an export directory?)")
    try:
        m = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportFormatError(f"{mpath}: not valid JSON ({exc})") from exc
    c = _Checker(mpath)
    if not isinstance(m, dict):
        c.fail("(top level)", f"expected an object, got {_show(m)}")
    c.equal(m, "format", "", FORMAT)
    c.equal(m, "format_version", "", FORMAT_VERSION)

    source = c.obj(m, "source", "")
    c.str_(source, "checkpoint", "source")
    if not HASH.match(c.str_(source, "sha256", "source")):
        c.fail("source.sha256", "expected 64 lower-case hex digits")
    c.obj(source, "config", "source")

    inp = c.obj(m, "input", "")
    shape = c.get(inp, "shape", "input")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 65535
                    for x in shape)):
        c.fail("input.shape", f"expected [C, H, W] of integers in 1..65535, got {_show(shape)}")
    c.equal(inp, "bits", "input", PIXEL_BITS)
    c.str_(inp, "encoding", "input")

    weights = c.obj(m, "weights", "")
    n_bits = c.int_(weights, "n_bits", "weights", 0, zn.MAX_BITS)
    c.equal(weights, "states", "weights", zn.num_states(n_bits))
    width = c.equal(weights, "code_bits", "weights", codes.code_bits(n_bits))
    code = c.obj(weights, "code", "weights")
    if code != codes.code_object(n_bits):
        c.fail("weights.code", f"is {_show(code)}, expected {codes.code_object(n_bits)}")

    act = c.obj(m, "activation", "")
    act_kind = c.str_(act, "kind", "activation", ACTIVATIONS)
    if c.number(act, "r", "activation") < 0:
        c.fail("activation.r", "must be >= 0")

    lanes = c.int_(m, "lanes", "", limits.LANES.lo, limits.LANES.hi)
    layer_specs = c.get(m, "layers", "")
    if not isinstance(layer_specs, list) or not layer_specs:
        c.fail("layers", "expected a non-empty list of layers")
    num_classes = c.int_(m, "num_classes", "", 1, 65535)

    layers = []
    prev = tuple(shape)  # the shape of the current layer's input
    for i, spec in enumerate(layer_specs):
        last = i == len(layer_specs) - 1
        layer, prev = _layer(c, folder, spec, i, last, prev, n_bits, width, lanes, act_kind)
        layers.append(layer)
    if layers[-1].n_out != num_classes:
        c.fail("num_classes", f"{num_classes}, but the last layer has {layers[-1].n_out} "
                              "outputs")
    return Export(folder, m, lanes, n_bits, tuple(shape), act_kind, layers)


def _layer(c: _Checker, folder: Path, spec, i: int, last: bool, prev: tuple, n_bits: int,
           width: int, lanes: int, act_kind: str):
    """Check layer ``i`` against the shape ``prev`` of its input; returns (Layer, out shape)."""
    w = f"layers[{i}]"
    if not isinstance(spec, dict):
        c.fail(w, f"expected an object, got {_show(spec)}")
    c.equal(spec, "index", w, i)
    kind = c.str_(spec, "type", w, LAYER_TYPES)
    c.equal(spec, "input", w, "pixel8" if i == 0 else "ternary")
    c.equal(spec, "n_bits", w, n_bits)
    n_in = c.int_(spec, "in", w, 1, 1 << 24)
    n_out = c.int_(spec, "out", w, 1, 1 << 16)
    if kind == "fc":
        if n_in != math.prod(prev):
            c.fail(f"{w}.in", f"{n_in}, but the layer's input {list(prev)} has "
                              f"{math.prod(prev)} values")
        out_shape: tuple = (n_out,)
    else:
        if len(prev) != 3:
            c.fail(f"{w}.type", "a conv layer must follow the input or another conv layer")
        in_shape = c.get(spec, "in_shape", w)
        if in_shape != list(prev):
            c.fail(f"{w}.in_shape", f"is {_show(in_shape)}, but the previous layer gives "
                                    f"{list(prev)}")
        c.equal(spec, "out_channels", w, n_out)
        k = c.int_(spec, "kernel", w, 1, 64)
        pad = c.int_(spec, "padding", w, 0, 64)
        pool = c.int_(spec, "pool", w, 0, 64)
        if n_in != prev[0] * k * k:
            c.fail(f"{w}.in", f"{n_in}, expected in_channels * kernel^2 = {prev[0] * k * k}")
        oh, ow = prev[1] + 2 * pad - k + 1, prev[2] + 2 * pad - k + 1
        if pool:
            oh, ow = oh // pool, ow // pool
        if oh < 1 or ow < 1:
            c.fail(f"{w}.kernel", f"kernel {k}, padding {pad}, pool {pool} leave no output of "
                                  f"the {prev[1]}x{prev[2]} input")
        out_shape = (n_out, oh, ow)
        c.equal(spec, "out_shape", w, list(out_shape))

    # ROM geometry, then the files
    rom = c.obj(spec, "rom", w)
    r = f"{w}.rom"
    c.equal(rom, "lanes", r, lanes)
    c.equal(rom, "code_bits", r, width)
    groups = c.equal(rom, "groups", r, -(-n_out // lanes))
    words = c.equal(rom, "words", r, groups * n_in)
    word_bits = c.equal(rom, "word_bits", r, lanes * width)
    word_bytes = c.equal(rom, "word_bytes", r, codes.word_bytes(lanes, width))
    c.str_(rom, "order", r)
    names = {f: c.file_name(rom, f, r) for f in ("bin", "hex")}
    digests = c.obj(rom, "sha256", r)
    raw = {}
    for f, name in names.items():
        digest = c.str_(digests, f, f"{r}.sha256")
        if not HASH.match(digest):
            c.fail(f"{r}.sha256.{f}", "expected 64 lower-case hex digits")
        raw[f] = _read_checked(folder / name, digest, f"{r}.{f}")
    if len(raw["bin"]) != words * word_bytes:
        raise ExportFormatError(f"{folder / names['bin']}: {w}: {len(raw['bin'])} bytes, "
                                f"expected {words} words x {word_bytes} bytes")
    data = np.frombuffer(raw["bin"], np.uint8).reshape(words, word_bytes)
    lane_codes = _check_codes(folder / names["bin"], data, lanes, width, word_bits, w)
    try:
        lane_w = codes.decode(lane_codes, n_bits)
    except codes.CodeError as exc:
        raise ExportFormatError(f"{folder / names['bin']}: {w}: {exc}") from exc
    full = codes.rom_weights(lane_w, n_out, n_in)
    if np.any(full[n_out:]):
        raise ExportFormatError(f"{folder / names['bin']}: {w}: lanes past output {n_out - 1} "
                                "hold nonzero weights (they must be code 0)")
    weights_ = np.ascontiguousarray(full[:n_out]).astype(np.int8)
    _check_hex(folder / names["hex"], raw["hex"], data, word_bits, w)

    # accumulator bound and width, from the weights
    m_abs = c.equal(spec, "acc_max_abs", w, acc_bound(i, weights_))
    c.equal(spec, "acc_bits", w, thresholds.signed_bits(m_abs))

    out = c.obj(spec, "output", w)
    o = f"{w}.output"
    layer = Layer(i, kind, n_in, n_out, weights_, spec, data)
    if not last:
        c.str_(out, "kind", o, (act_kind,))
        c.equal(out, "threshold_bits", o, thresholds.signed_bits(m_abs + 1))
        layer.flip = c.ints(out, "flip", o, n_out, 0, 1)
        layer.lo = c.ints(out, "lo", o, n_out, -m_abs - 1, m_abs)
        layer.hi = c.ints(out, "hi", o, n_out, -m_abs, m_abs + 1)
        bad = np.flatnonzero(layer.lo >= layer.hi)
        if bad.size:
            c.fail(f"{o}.lo", f"lo >= hi for neuron {bad[0]} (lo must be below hi)")
        if act_kind == "binary" and np.any(layer.lo != layer.hi - 1):
            c.fail(f"{o}.lo", "binary outputs need lo = hi - 1 (they are never 0)")
    else:
        c.equal(out, "kind", o, "scores")
        cbits = c.equal(out, "coef_bits", o, thresholds.COEF_BITS)
        obits = c.equal(out, "offset_bits", o, thresholds.OFFSET_BITS)
        c.int_(out, "frac_bits", o, -64, 62)
        lim = 2 ** (cbits - 1) - 1
        layer.coef = c.ints(out, "coef", o, n_out, -lim, lim)
        layer.offset = c.ints(out, "offset", o, n_out, -(2 ** (obits - 1)), 2 ** (obits - 1) - 1)
        score_max = int(np.abs(layer.coef).max()) * m_abs + int(np.abs(layer.offset).max())
        c.equal(out, "score_bits", o, thresholds.signed_bits(score_max))
        c.equal(out, "tie_break", o, TIE_BREAK)
    if kind == "conv" and last:
        c.fail(f"{w}.type", "the last layer must be fc")
    return layer, out_shape


def _read_checked(path: Path, digest: str, what: str) -> bytes:
    if not path.is_file():
        raise ExportFormatError(f"{path}: missing ({what})")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ExportFormatError(f"{path}: SHA-256 {actual} does not match the manifest's "
                                f"{what} sha256 {digest}")
    return data


def _check_hex(path: Path, raw: bytes, data: np.ndarray, word_bits: int, where: str) -> None:
    """The .hex file holds exactly the .bin's words ($readmemh text, one word per line)."""
    try:
        lines = raw.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise ExportFormatError(f"{path}: {where}.rom.hex: not ASCII text") from None
    if lines and lines[-1] == "":
        lines.pop()
    want = codes.hex_lines(data, word_bits)
    if len(lines) != len(want):
        raise ExportFormatError(f"{path}: {where}.rom.hex: {len(lines)} lines, the .bin has "
                                f"{len(want)} words")
    for k, (got, exp) in enumerate(zip(lines, want, strict=True)):
        if got != exp:
            raise ExportFormatError(f"{path}: {where}.rom.hex: word {k} is {got!r}, the .bin "
                                    f"holds {exp!r}")


def _check_codes(path: Path, data: np.ndarray, lanes: int, width: int, word_bits: int,
                 where: str) -> np.ndarray:
    """The lane codes of every word; the padding bits above ``word_bits`` must be zero."""
    pad = data.shape[1] * 8 - word_bits
    if pad:
        top = data[:, -1] >> (8 - pad)
        if np.any(top):
            k = int(np.flatnonzero(top)[0])
            raise ExportFormatError(f"{path}: {where}.rom.bin: word {k} has padding bits set "
                                    f"above bit {word_bits - 1}")
    return codes.unpack_rom(data, lanes, width)


def dataset_images(export: Export, n: int, data_dir=None) -> np.ndarray:
    """The first ``n`` test images of the dataset the network was trained on."""
    from gxnor.model import data

    name = export.dataset
    if not isinstance(name, str) or name in ("none", ""):
        raise InputError(f"{export.dir / MANIFEST}: source.config.dataset {name!r} is not a "
                         "dataset gxnor can load; cannot pick test images")
    ds = data.load(name, data_dir)
    limits.IMAGES.check(n)
    if n > len(ds.test):
        raise InputError(f"--images {n}: the {name} test set has {len(ds.test)}")
    if ds.input_shape != tuple(export.input_shape):
        raise InputError(f"{export.dir / MANIFEST}: input.shape {list(export.input_shape)} "
                         f"does not match the {name} images {list(ds.input_shape)}")
    return ds.test.images[:n]
