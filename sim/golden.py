"""The golden model: bit-exact integer inference from the exported files alone.

Plain NumPy, no HDL and no torch. It reads the export through :func:`gxnor.export.format.load`
(which checks every field and file and decodes the weight codes) and applies the folded
thresholds with :mod:`gxnor.export.thresholds`. It is the oracle of every hardware test.

For a batch of uint8 images it returns every layer's integer accumulators and outputs, the
class scores and classes, and the event statistics per layer and image:

* ``events``: nonzero input activations of the layer (what the event generator emits),
* ``gate_open``: nonzero weight x nonzero activation pairs (XNOR operations performed),
* ``skipped``: dense operations (in * out) minus gate-open ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gxnor.export import format, thresholds
from gxnor.export.format import Layer


class Events(list):
    """Events per layer: ``self[l]`` the events of layer l (its nonzero inputs), an int64
    array over the images (or an int for one image: :meth:`image`), as a list of counts always
    was; and where they are: ``fired[l]``, which inputs of layer l are nonzero (images x
    inputs, bool; None where unknown). The shared engine's cycle model needs where
    (:func:`gxnor.hw.timing.tail_events`): a layer starts while the last group of the layer
    before is still being written."""

    def __init__(self, counts, fired=None):
        super().__init__(counts)
        self.fired = list(fired) if fired is not None else [None] * len(self)
        if len(self.fired) != len(self):
            raise ValueError(f"{len(self.fired)} masks for {len(self)} layers")

    @classmethod
    def dense(cls, layer_inputs, images: int | None = None) -> Events:
        """Every input an event (the dense worst case): per layer its inputs, for one image
        (ints) or ``images`` images (arrays)."""
        if images is None:
            return cls(list(layer_inputs), [np.ones(n, bool) for n in layer_inputs])
        return cls([np.full(images, n) for n in layer_inputs],
                   [np.ones((images, n), bool) for n in layer_inputs])

    def from_index(self, layer: int, start: int):
        """The events of layer ``layer`` at input index ``start`` or later (per image)."""
        mask = self.fired[layer]
        if mask is None:
            raise ValueError(f"where layer {layer}'s events are is not known")
        return mask[..., start:].sum(-1, dtype=np.int64)

    def image(self, i: int) -> Events:
        """Image ``i``'s events: ints, and its rows of the masks."""
        return Events([int(c[i]) for c in self],
                      [None if f is None else f[i] for f in self.fired])

    @staticmethod
    def join(parts) -> Events:
        """The events of several batches (each an :class:`Events` over its images), in
        order."""
        parts = list(parts)
        if not parts:
            raise ValueError("no events to join")
        counts = [np.concatenate([np.atleast_1d(p[i]) for p in parts])
                  for i in range(len(parts[0]))]
        fired = [None if any(p.fired[i] is None for p in parts)
                 else np.concatenate([np.atleast_2d(p.fired[i]) for p in parts])
                 for i in range(len(parts[0]))]
        return Events(counts, fired)

    def select(self, index) -> Events:
        """The events of the images ``index`` (an index array or a slice)."""
        return Events([np.asarray(c)[index] for c in self],
                      [None if f is None else f[index] for f in self.fired])


@dataclass
class Result:
    """Per-image integers of one batch; every array has the batch on axis 0."""

    acc: list[np.ndarray] = field(default_factory=list)  # per layer (B, out...) int64
    out: list[np.ndarray] = field(default_factory=list)  # hidden layers: (B, out...) int8
    scores: np.ndarray | None = None  # (B, classes) int64
    classes: np.ndarray | None = None  # (B,) int64
    events: Events = field(default_factory=lambda: Events([]))  # per layer (B,) int64
    gate_open: list[np.ndarray] = field(default_factory=list)  # per layer (B,) int64
    dense_ops: list[int] = field(default_factory=list)  # per layer, per image

    @property
    def skipped(self) -> list[np.ndarray]:
        return [d - g for d, g in zip(self.dense_ops, self.gate_open, strict=True)]


class Network:
    """An exported network, loaded and checked by :func:`gxnor.export.format.load`;
    ``run(images)`` is the bit-exact inference."""

    def __init__(self, export_dir: str | Path):
        self.export = format.load(export_dir)
        self.dir = self.export.dir
        self.manifest = self.export.manifest
        self.lanes = self.export.lanes
        self.n_bits = self.export.n_bits
        self.input_shape = self.export.input_shape
        self.layers: list[Layer] = self.export.layers

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
                fired = flat != 0
                nz_in = fired.astype(dtype)
                res.events.append(nz_in.sum(1).astype(np.int64))
                res.events.fired.append(fired)
                colnnz = (layer.weights != 0).sum(0).astype(dtype)
                res.gate_open.append((nz_in @ colnnz).astype(np.int64))
                res.dense_ops.append(layer.n_in * layer.n_out)
            else:
                acc, events, gates, dense = _conv_layer(x.astype(dtype, copy=False), layer,
                                                        dtype)
                res.events.append(events)
                res.events.fired.append(None)
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


def test_images(export_dir, images: int = 1000, data_dir=None) -> np.ndarray | None:
    """The export's first ``images`` test images, or None without its dataset at hand."""
    from gxnor.model.data import DatasetError

    try:
        return format.dataset_images(format.load(export_dir), images, data_dir)
    except (ValueError, OSError, DatasetError):
        return None


def dataset_events(export_dir, images: int = 1000, data_dir=None):
    """Events per layer on the export's first ``images`` test images, and where they came
    from; without the dataset at hand, every input an event (the dense worst case)."""
    return events_of(export_dir, test_images(export_dir, images, data_dir))


def events_of(export_dir, imgs: np.ndarray | None):
    """Events per layer on ``imgs`` (:func:`test_images`) and where they came from; for None,
    every input an event (the dense worst case)."""
    if imgs is None:
        net = format.load(export_dir)
        return Events.dense([ly.inputs for ly in net.layers], 1), \
            "dense worst case (dataset not found)"
    res = Network(export_dir).run(imgs)
    return res.events, f"{len(imgs)} test images of the export's dataset"


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
