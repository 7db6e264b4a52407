"""The golden model: bit-exact integer inference from the exported files alone.

Plain NumPy, no HDL and no torch. It reads ``manifest.json`` and the ROM images (checking their
SHA-256), decodes the weight codes with :mod:`gxnor.export.codes` and applies the folded
thresholds with :mod:`gxnor.export.thresholds`. It is the oracle of every hardware test.

For a batch of uint8 images it returns every layer's integer accumulators and outputs, the
class scores and classes, and the event statistics per layer and image:

* ``events``: nonzero input activations of the layer (what the event generator emits),
* ``gate_open``: nonzero weight x nonzero activation pairs (XNOR operations performed),
* ``skipped``: dense operations (in * out) minus gate-open ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gxnor.base.errors import InputError
from gxnor.export import codes, thresholds
from gxnor.export.exporter import FORMAT, FORMAT_VERSION, MANIFEST


class ExportFormatError(InputError):
    """The export directory is missing something or was altered; names the file and field."""


@dataclass
class Layer:
    index: int
    type: str
    n_in: int
    n_out: int
    weights: np.ndarray  # (n_out, n_in) int8 integer weights
    spec: dict
    flip: np.ndarray | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    coef: np.ndarray | None = None
    offset: np.ndarray | None = None
    rom: np.ndarray | None = None  # (words, word_bytes) uint8, as in the .bin file

    def rom_words(self) -> list[int]:
        """The ROM image as integers, one per word (lane 0 in the low bits)."""
        return [int.from_bytes(row.tobytes(), "little") for row in self.rom]

    def words_for(self, lanes: int, n_bits: int) -> list[int]:
        """ROM words for an array of ``lanes`` lanes: the export's own image when the lane
        counts match, else the same weights packed by the exporter's rules for ``lanes``."""
        if lanes == self.spec["rom"]["lanes"]:
            return self.rom_words()
        from gxnor.export.exporter import rom_words

        data = codes.pack_rom(codes.encode(rom_words(self.weights, lanes), n_bits),
                              codes.code_bits(n_bits))
        return [int.from_bytes(row.tobytes(), "little") for row in data]

    @property
    def is_last(self) -> bool:
        return self.spec["output"]["kind"] == "scores"


@dataclass
class Result:
    """Per-image integers of one batch; every array has the batch on axis 0."""

    acc: list[np.ndarray] = field(default_factory=list)  # per layer (B, out...) int64
    out: list[np.ndarray] = field(default_factory=list)  # hidden layers: (B, out...) int8
    scores: np.ndarray | None = None  # (B, classes) int64
    classes: np.ndarray | None = None  # (B,) int64
    events: list[np.ndarray] = field(default_factory=list)  # per layer (B,) int64
    gate_open: list[np.ndarray] = field(default_factory=list)  # per layer (B,) int64
    dense_ops: list[int] = field(default_factory=list)  # per layer, per image

    @property
    def skipped(self) -> list[np.ndarray]:
        return [d - g for d, g in zip(self.dense_ops, self.gate_open, strict=True)]


def _read_checked(folder: Path, name: str, digest: str, what: str) -> bytes:
    path = folder / name
    if not path.exists():
        raise ExportFormatError(f"{path}: missing ({what})")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ExportFormatError(f"{path}: SHA-256 {actual} does not match the manifest's "
                                f"{what} sha256 {digest}")
    return data


class Network:
    """An exported network, loaded and checked. ``run(images)`` is the bit-exact inference."""

    def __init__(self, export_dir: str | Path):
        self.dir = Path(export_dir)
        mpath = self.dir / MANIFEST
        if not mpath.exists():
            raise ExportFormatError(f"{mpath}: missing (not an export directory?)")
        try:
            m = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExportFormatError(f"{mpath}: not valid JSON ({exc})") from exc
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ExportFormatError(f"{mpath}: field 'format' is not {FORMAT!r}")
        if m.get("format_version") != FORMAT_VERSION:
            raise ExportFormatError(f"{mpath}: field 'format_version' is "
                                    f"{m.get('format_version')!r}, expected {FORMAT_VERSION}")
        self.manifest = m
        try:
            self.lanes = int(m["lanes"])
            self.n_bits = int(m["weights"]["n_bits"])
            self.input_shape = tuple(m["input"]["shape"])
            self.layers = [self._load_layer(spec, mpath) for spec in m["layers"]]
        except KeyError as exc:
            raise ExportFormatError(f"{mpath}: field {exc} missing") from exc
        if not self.layers or not self.layers[-1].is_last:
            raise ExportFormatError(f"{mpath}: field 'layers' must end with a scores layer")

    def _load_layer(self, spec: dict, mpath: Path) -> Layer:
        i = spec["index"]
        rom = spec["rom"]
        raw = _read_checked(self.dir, rom["bin"], rom["sha256"]["bin"], f"layers[{i}].rom.bin")
        _read_checked(self.dir, rom["hex"], rom["sha256"]["hex"], f"layers[{i}].rom.hex")
        nbytes = rom["word_bytes"]
        if len(raw) != rom["words"] * nbytes:
            raise ExportFormatError(f"{self.dir / rom['bin']}: {len(raw)} bytes, expected "
                                    f"{rom['words']} words x {nbytes} bytes")
        data = np.frombuffer(raw, np.uint8).reshape(rom["words"], nbytes)
        lanes_codes = codes.unpack_rom(data, rom["lanes"], rom["code_bits"])
        try:
            lane_w = codes.decode(lanes_codes, self.n_bits).astype(np.int8)
        except codes.CodeError as exc:
            raise ExportFormatError(f"{self.dir / rom['bin']}: layers[{i}]: {exc}") from exc
        n_in, n_out, groups, lanes = spec["in"], spec["out"], rom["groups"], rom["lanes"]
        if rom["words"] != groups * n_in or groups * lanes < n_out:
            raise ExportFormatError(f"{mpath}: layers[{i}].rom: {rom['words']} words do not "
                                    f"match {groups} groups x {n_in} inputs")
        full = lane_w.reshape(groups, n_in, lanes).transpose(0, 2, 1).reshape(groups * lanes, n_in)
        layer = Layer(i, spec["type"], n_in, n_out, np.ascontiguousarray(full[:n_out]), spec,
                      rom=data)
        out = spec["output"]
        if out["kind"] == "scores":
            layer.coef = np.asarray(out["coef"], np.int64)
            layer.offset = np.asarray(out["offset"], np.int64)
            arrays = (layer.coef, layer.offset)
        else:
            layer.flip = np.asarray(out["flip"], np.int64)
            layer.lo = np.asarray(out["lo"], np.int64)
            layer.hi = np.asarray(out["hi"], np.int64)
            arrays = (layer.flip, layer.lo, layer.hi)
        for a in arrays:
            if a.shape != (n_out,):
                raise ExportFormatError(f"{mpath}: layers[{i}].output: {a.shape[0]} values, "
                                        f"expected {n_out}")
        if layer.lo is not None and np.any(layer.lo >= layer.hi):
            raise ExportFormatError(f"{mpath}: layers[{i}].output: lo >= hi")
        return layer

    # ------------------------------------------------------------------ inference
    def run(self, images: np.ndarray) -> Result:
        x = np.asarray(images)
        if x.dtype != np.uint8:
            raise ValueError(f"images must be uint8 pixels, got {x.dtype}")
        batch = x.shape[0]
        if int(np.prod(x.shape[1:])) != int(np.prod(self.input_shape)):
            raise ValueError(f"images of shape {x.shape[1:]} do not match the network's input "
                             f"{self.input_shape}")
        # Inputs stay in a float type in which every sum is exact (see _exact_dtype): BLAS
        # does the integer arithmetic, and the results are converted to int64 once per layer.
        x = x.reshape(batch, *self.input_shape)
        res = Result()
        for layer in self.layers:
            dtype = _exact_dtype(layer.spec["acc_max_abs"] + layer.n_in * layer.n_out)
            if layer.type == "fc":
                flat = x.reshape(batch, -1).astype(dtype, copy=False)
                acc = _matmul(flat, layer.weights, dtype)
                nz_in = (flat != 0).astype(dtype)
                res.events.append(nz_in.sum(1).astype(np.int64))
                colnnz = (layer.weights != 0).sum(0).astype(dtype)
                res.gate_open.append((nz_in @ colnnz).astype(np.int64))
                res.dense_ops.append(layer.n_in * layer.n_out)
            else:
                acc, events, gates, dense = _conv_layer(x.astype(dtype, copy=False), layer,
                                                        dtype)
                res.events.append(events)
                res.gate_open.append(gates)
                res.dense_ops.append(dense)
            res.acc.append(acc)
            if layer.is_last:
                res.scores = thresholds.scores(acc, layer.coef, layer.offset)
                res.classes = thresholds.argmax_lowest(res.scores)
            else:
                shape = (1,) * (acc.ndim - 2)
                y = thresholds.apply(acc, layer.flip.reshape(-1, *shape),
                                     layer.lo.reshape(-1, *shape), layer.hi.reshape(-1, *shape))
                res.out.append(y)
                x = y
        return res


def _exact_dtype(max_abs: int):
    """The narrowest float type in which integer sums up to ``max_abs`` are exact."""
    if max_abs < 2**24:
        return np.float32
    if max_abs < 2**53:
        return np.float64
    return np.int64


def _matmul(x: np.ndarray, w: np.ndarray, dtype) -> np.ndarray:
    """Integer x @ w.T (exact in ``dtype``), as int64."""
    return (x @ w.T.astype(dtype)).astype(np.int64)


def _conv_layer(x: np.ndarray, layer: Layer, dtype):
    """Valid/zero-padded stride-1 convolution + integer max-pool; events per input map."""
    spec = layer.spec
    k, pad, pool = spec["kernel"], spec["padding"], spec["pool"]
    batch, c, h, w = x.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = x.shape[2] - k + 1, x.shape[3] - k + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # B,C,oh,ow,k,k
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(batch * oh * ow, c * k * k)
    acc = _matmul(cols, layer.weights, dtype)
    acc = acc.reshape(batch, oh, ow, -1).transpose(0, 3, 1, 2)
    nz = cols != 0
    gates = (nz.astype(dtype) @ (layer.weights != 0).sum(0).astype(dtype))
    gates = gates.astype(np.int64).reshape(batch, -1).sum(1)
    events = (x != 0).reshape(batch, -1).sum(1)
    dense = oh * ow * layer.n_in * layer.n_out
    if pool:
        ph, pw = oh // pool, ow // pool
        acc = acc[:, :, : ph * pool, : pw * pool].reshape(batch, -1, ph, pool, pw, pool)
        acc = acc.max(axis=(3, 5))
    return acc, events, gates, dense
