"""What the accelerator is built from: the integers of an export (:class:`AcceleratorSpec`),
and the layouts of the words that cross its boundary (the result word, the weight load)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.lib import data

from gxnor.base.errors import InputError
from gxnor.export import codes

#: widths of the counters reported with every result (see :func:`result_layout`)
CYCLE_BITS = 32
EVENT_COUNT_BITS = 16


def _bits(n: int) -> int:
    """Bits of an index into ``n`` things."""
    return max(n - 1, 0).bit_length()


@dataclass(frozen=True)
class ConvShape:
    """A convolution layer's geometry: a ``channels`` x ``height`` x ``width`` input map,
    ``kernel`` x ``kernel`` filters (stride 1, no padding), max-pooling ``pool`` x ``pool``
    (1: none) on the integer accumulators.

    Its input events are indexed by position, packed: ``c << (y_bits + x_bits) | y << x_bits
    | x`` (:meth:`index`), so that the engine reads an event's channel, row and column as bit
    fields. An fc layer's inputs are indexed flat, ``c * H * W + y * W + x``, the golden
    model's flatten order."""

    channels: int
    height: int
    width: int
    kernel: int
    pool: int = 1

    @property
    def conv_height(self) -> int:
        return self.height - self.kernel + 1

    @property
    def conv_width(self) -> int:
        return self.width - self.kernel + 1

    @property
    def pooled_height(self) -> int:
        return self.conv_height // self.pool

    @property
    def pooled_width(self) -> int:
        return self.conv_width // self.pool

    @property
    def used_height(self) -> int:
        """Rows of the convolution's output that pooling reads (the rest are cropped)."""
        return self.pooled_height * self.pool

    @property
    def used_width(self) -> int:
        return self.pooled_width * self.pool

    @property
    def positions(self) -> int:
        """Output positions after pooling."""
        return self.pooled_height * self.pooled_width

    @property
    def x_bits(self) -> int:
        return _bits(self.width)

    @property
    def y_bits(self) -> int:
        return _bits(self.height)

    @property
    def c_bits(self) -> int:
        return _bits(self.channels)

    @property
    def index_bits(self) -> int:
        return max(self.c_bits + self.y_bits + self.x_bits, 1)

    @property
    def events(self) -> int:
        """The most events an input map can hold: every activation nonzero."""
        return self.channels * self.height * self.width

    def index(self, c, y, x):
        """The packed event index of input (c, y, x) (integers, NumPy arrays or Amaranth
        values)."""
        return (c << (self.y_bits + self.x_bits)) | (y << self.x_bits) | x

    def split(self, index):
        """(c, y, x) of a packed event index (an Amaranth value): its bit fields."""
        yx = self.y_bits + self.x_bits
        return (index >> yx, index[self.x_bits:yx] if self.y_bits else 0,
                index[:self.x_bits] if self.x_bits else 0)

    def numbering(self, after: LayerSpec) -> tuple[int, int]:
        """How the layer ``after`` this one numbers this layer's outputs: (row_step, stride),
        output (channel n, pooled row py, column px) being ``n * stride + py * row_step +
        px``. A conv layer after it packs them (:meth:`index`), an fc layer takes them flat
        (the golden model's flatten order)."""
        if after.conv:
            return 1 << after.conv.x_bits, 1 << (after.conv.y_bits + after.conv.x_bits)
        return self.pooled_width, self.positions

    def flat_to_index(self) -> np.ndarray:
        """The packed index of every input in flat (c, y, x) order."""
        c, y, x = np.meshgrid(np.arange(self.channels), np.arange(self.height),
                              np.arange(self.width), indexing="ij")
        return self.index(c, y, x).reshape(-1)


@dataclass(frozen=True)
class LayerSpec:
    n_in: int  # fan-in of an output (conv: channels x kernel x kernel)
    n_out: int  # outputs (conv: output channels)
    acc_bits: int
    words: tuple[int, ...]  # ROM words, lane j at bits [2j+1:2j]
    flip: tuple[int, ...] = ()
    lo: tuple[int, ...] = ()
    hi: tuple[int, ...] = ()
    coef: tuple[int, ...] = ()
    offset: tuple[int, ...] = ()
    conv: ConvShape | None = None  # a convolution layer's geometry (None: fully connected)

    @property
    def inputs(self) -> int:
        """Entries of the layer's input (an event list's depth): fc its fan-in, conv the
        input map."""
        return self.conv.events if self.conv else self.n_in

    @property
    def index_bits(self) -> int:
        """Bits of an input event's index."""
        return self.conv.index_bits if self.conv else max(1, _bits(self.n_in))


@dataclass(frozen=True)
class AcceleratorSpec:
    """Everything the RTL needs, taken from an export (integers only)."""

    lanes: int
    layers: tuple[LayerSpec, ...]
    threshold_bits: int
    coef_bits: int
    offset_bits: int
    score_bits: int
    #: k: events the engine takes per cycle (event-list banks, weight-memory read ports,
    #: gated-XNOR terms per lane and cycle); a power of two
    ports: int = 1
    #: r: neurons the serializer thresholds per cycle; a power of two
    rate: int = 1
    #: S: events the last layer takes per cycle when its neurons fill at most 1/S of the
    #: lanes (a power of two; ``ports`` then 1). The weight memory is S column slices of P/S
    #: lanes, each with its own address: for the other layers they all read one word, for the
    #: last layer slice t reads event t's word, whose first n_out codes are the layer's
    #: weights (each slice holds the layer's words), and the lanes of slice t add event t;
    #: a class's score adds its S lanes' sums. The iCEBreaker's 10 classes in 32 lanes: two
    #: events a cycle, 60% of the SPRAM's 64 bits used instead of 31%.
    slices: int = 1

    #: one engine time-multiplexed over the layers (:class:`PipelineSpec`: one per layer)
    schedule = "shared"

    @classmethod
    def from_export(cls, net, lanes: int | None = None, *, ports: int = 1,
                    rate: int = 1, slices: int = 1) -> AcceleratorSpec:
        """From a checked export (:func:`gxnor.export.format.load`), for ``lanes`` lanes
        (default: the export's; other lane counts repack the same weights), ``ports`` events
        and ``rate`` neurons per cycle, the last layer in ``slices`` slices."""
        lanes = net.lanes if lanes is None else lanes
        Fold(lanes, ports, rate).check()
        layers, *widths = _layers(net, [lanes] * len(net.layers))
        if slices != 1:
            last = layers[-1]
            check_slices(lanes, ports, slices, last.n_out)
            width = lanes // slices
            narrow = net.layers[-1].words_for(width, net.n_bits)
            words = tuple(sum(w << (codes.CODE_BITS * width * t) for t in range(slices))
                          for w in narrow)
            layers = (*layers[:-1], dataclasses.replace(last, words=words))
        return cls(lanes, layers, *widths, ports, rate, slices)

    def engine(self, layer: int) -> AcceleratorSpec:
        """The spec of ``layer`` alone on this spec's engine."""
        return _engine(self, layer, Fold(self.lanes, self.ports, self.rate))

    @property
    def folds(self) -> tuple[Fold, ...]:
        """Per layer: the engine's lanes, ports (the last layer's: ``slices`` when it is
        sliced) and rate (1 for the last layer)."""
        return tuple(Fold(self.lanes, k, r) for k, r in layer_folds(
            len(self.layers), self.ports, self.rate, self.slices))

    @property
    def num_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def n_pixels(self) -> int:
        return self.layers[0].n_in

    @property
    def acc_bits(self) -> int:
        return max(ly.acc_bits for ly in self.layers)

    @property
    def words(self) -> list[int]:
        """Every layer's ROM words in weight-memory address order (layer after layer)."""
        return [w for ly in self.layers for w in ly.words]

    @property
    def weight_words(self) -> int:
        return sum(len(ly.words) for ly in self.layers)

    @property
    def word_bits(self) -> int:
        """Bits of a weight word: one gated-XNOR code per lane."""
        return codes.CODE_BITS * self.lanes

    @property
    def word_bytes(self) -> int:
        return codes.word_bytes(self.lanes, codes.CODE_BITS)

    @property
    def event_depth(self) -> int:
        """Entries of each event list: the widest layer input."""
        return max(ly.n_in for ly in self.layers)

    @property
    def banks(self) -> int:
        """Banks of the event lists: ``ports`` events read, up to ``rate`` written a cycle."""
        return max(self.ports, self.rate)

    @property
    def threshold_rows(self) -> list[int]:
        """Each hidden layer's first row in the threshold memory, whose rows hold ``rate``
        neurons (a layer starts on a row of its own)."""
        rows, at = [], 0
        for ly in self.layers[:-1]:
            rows.append(at)
            at += -(-ly.n_out // self.rate)
        return rows


def layer_folds(n_layers: int, ports: int = 1, rate: int = 1, slices: int = 1):
    """(ports, rate) of each layer of the shared engine: the last layer scores one neuron a
    cycle and, sliced (:attr:`AcceleratorSpec.slices`), takes ``slices`` events a cycle."""
    last = n_layers - 1
    return [(slices if i == last and slices > 1 else ports, 1 if i == last else rate)
            for i in range(n_layers)]


def check_slices(lanes: int, ports: int, slices: int, n_out: int) -> None:
    """Raise :class:`InputError` unless the shared engine's last layer can be cut into
    ``slices`` (:attr:`AcceleratorSpec.slices`)."""
    if not isinstance(slices, int) or slices < 1 or slices & (slices - 1):
        raise InputError(f"slices must be a power of two, got {slices!r}")
    if slices > 1 and ports != 1:
        raise InputError(f"a sliced last layer takes its {slices} events a cycle on an engine "
                         f"of one port, not {ports}")
    if lanes % slices or n_out > lanes // slices:
        raise InputError(f"the last layer's {n_out} neurons do not fit in {slices} slices of "
                         f"{lanes} lanes (at most {lanes // max(n_out, 1)} slices)")


def conv_taps(kernel: int) -> list[int]:
    """The kernel taps a convolution's token may carry (its fold's ports): part of a row,
    1 .. k, or whole rows, 2k .. k^2 (``gxnor.hw.conv.tile``)."""
    return [*range(1, kernel + 1), *(kernel * n for n in range(2, kernel + 1))]


@dataclass(frozen=True)
class Fold:
    """How one layer's engine is folded: P lanes (output neurons at once), k event ports
    (events per cycle; a convolution: kernel taps per cycle, ``gxnor.hw.conv.tile``) and r
    (neurons thresholded per serializer cycle)."""

    lanes: int
    ports: int = 1
    rate: int = 1

    def check(self, where: str = "", kernel: int | None = 0) -> Fold:
        """Raise :class:`InputError` naming ``where`` (e.g. a layer) if it cannot be built.
        ``kernel``: 0 for a fully connected engine (ports: events per token, a power of
        two), a convolution's k (ports: kernel taps per token, 1 .. k or whole rows), None
        when the layer is not known yet (ports: any of 1 .. 64)."""
        at = f"{where}: " if where else ""
        if not isinstance(self.lanes, int) or self.lanes < 1:
            raise InputError(f"{at}lanes must be >= 1, got {self.lanes}")
        checks = [("rate", self.rate)]
        if kernel == 0:
            checks.insert(0, ("ports", self.ports))
        elif kernel is None:
            if not isinstance(self.ports, int) or not 1 <= self.ports <= 64:
                raise InputError(f"{at}ports must be 1..64, got {self.ports}")
        elif self.ports not in conv_taps(kernel):
            raise InputError(
                f"{at}a {kernel}x{kernel} convolution's ports (kernel taps per token: part of "
                f"a row, or whole rows) must be 1..{kernel} or a multiple of {kernel} up to "
                f"{kernel * kernel}, got {self.ports}")
        for name, v in checks:
            if not isinstance(v, int) or v < 1 or v & (v - 1) or v > 64:
                raise InputError(f"{at}{name} must be a power of two in 1..64, got {v}")
        if self.lanes % self.rate:
            raise InputError(f"{at}rate {self.rate} must divide lanes {self.lanes} (a group's "
                             "neurons go through the serializer in rows of rate)")
        return self


def event_ports(layer: LayerSpec, fold: Fold) -> int:
    """Events an engine reads per token: its ports (a convolution's ports are kernel taps a
    token: one event)."""
    return 1 if layer.conv else fold.ports


def _layers(net, lanes: list[int], conv: bool = False):
    """The layers of a checked export, each packed for its lane count, and the widths of the
    output units: (layers, threshold_bits, coef_bits, offset_bits, score_bits). ``conv``:
    convolution layers are allowed (the layer pipeline runs them, the shared engine not)."""
    if net.n_bits > 1:
        raise InputError(f"{net.dir}: weights are Z_{net.n_bits}; the gated-XNOR array "
                         "runs binary (N=0) and ternary (N=1) weights only")
    layers = []
    tbits = 2
    last = net.layers[-1].spec["output"]
    for layer, p in zip(net.layers, lanes, strict=True):
        shape = None
        if layer.type == "conv":
            shape = _conv_shape(net, layer, conv)
        out = layer.spec["output"]
        words = tuple(layer.words_for(p, net.n_bits))
        if layer.is_last:
            layers.append(LayerSpec(layer.n_in, layer.n_out, layer.spec["acc_bits"], words,
                                    coef=tuple(out["coef"]), offset=tuple(out["offset"])))
        else:
            tbits = max(tbits, out["threshold_bits"])
            layers.append(LayerSpec(layer.n_in, layer.n_out, layer.spec["acc_bits"], words,
                                    tuple(out["flip"]), tuple(out["lo"]), tuple(out["hi"]),
                                    conv=shape))
    if net.layers[0].n_in > 2**16 or any(ly.n_out > 2**16 for ly in layers):
        raise InputError(f"{net.dir}: layers wider than 65536 are not supported")
    return (tuple(layers), tbits, last["coef_bits"], last["offset_bits"],
            last["score_bits"])


def _conv_shape(net, layer, allowed: bool) -> ConvShape:
    """The geometry of a checked export's conv layer, or a clear error where the hardware
    cannot run it."""
    where = f"{net.dir}: layers[{layer.index}]"
    if not allowed:
        raise InputError(f"{where} is 'conv': convolution layers run in the pipelined "
                         "schedule only (one engine per layer); the shared engine runs fully "
                         "connected layers")
    spec = layer.spec
    if spec["padding"]:
        raise InputError(f"{where}.padding is {spec['padding']}: the convolution engine "
                         "runs unpadded (valid) convolutions only")
    c, h, w = spec["in_shape"]
    return ConvShape(c, h, w, spec["kernel"], spec["pool"] or 1)


def _engine(spec, layer: int, fold: Fold) -> AcceleratorSpec:
    return AcceleratorSpec(fold.lanes, (spec.layers[layer],), spec.threshold_bits,
                           spec.coef_bits, spec.offset_bits, spec.score_bits, fold.ports,
                           fold.rate)


@dataclass(frozen=True)
class PipelineSpec:
    """The layer pipeline: one engine per layer, each folded its own way (:class:`Fold`), and
    an input of up to ``input_ports`` events (nonzero pixels) per cycle. Each layer's words are
    packed for its own lanes."""

    folds: tuple[Fold, ...]
    layers: tuple[LayerSpec, ...]
    threshold_bits: int
    coef_bits: int
    offset_bits: int
    score_bits: int
    input_ports: int = 1
    #: B: the event lists at each boundary between two stages (image i uses list i mod B).
    #: Two would do (one written, one read), but an image's last outputs reach the next
    #: stage a serializer's drain after its producer has moved on: with a third the stages
    #: run at the slowest one's pace (the cycle model on the 10,000 MNIST test images,
    #: default net folded 256x4x8, 256x4x8, 10x4x1: 70.6 -> 51.2 cycles/image)
    buffers: int = 3

    schedule = "pipelined"

    @classmethod
    def from_export(cls, net, folds, input_ports: int = 1, buffers: int = 3) -> PipelineSpec:
        """From a checked export and a :class:`Fold` (or (lanes, ports, rate)) per layer."""
        folds = tuple(f if isinstance(f, Fold) else Fold(*f) for f in folds)
        if len(folds) != len(net.layers):
            raise InputError(f"{net.dir}: {len(folds)} folds for {len(net.layers)} layers")
        for i, (f, ly) in enumerate(zip(folds, net.layers, strict=True)):
            f.check(f"layer {i}", ly.spec["kernel"] if ly.type == "conv" else 0)
        if folds[-1].rate != 1:
            raise InputError(f"layer {len(folds) - 1}: the last layer scores one class per "
                             f"cycle (rate 1), got rate {folds[-1].rate}")
        Fold(1, input_ports).check("input")
        if not isinstance(buffers, int) or not 2 <= buffers <= 4:
            raise InputError(f"buffers must be 2, 3 or 4, got {buffers}")
        return cls(folds, *_layers(net, [f.lanes for f in folds], conv=True), input_ports,
                   buffers)

    def engine(self, layer: int) -> AcceleratorSpec:
        """The spec of one layer's engine (its lanes, ports, rate; its layer alone)."""
        return _engine(self, layer, self.folds[layer])

    def banks(self, layer: int) -> int:
        """Banks of layer ``layer``'s input lists: its ports, and the events its writer
        appends per cycle (the input's ``input_ports``, or the previous serializer's rate)."""
        writer = self.input_ports if layer == 0 else self.folds[layer - 1].rate
        return max(event_ports(self.layers[layer], self.folds[layer]), writer)

    @property
    def num_classes(self) -> int:
        return self.layers[-1].n_out

    @property
    def n_pixels(self) -> int:
        return self.layers[0].inputs

    @property
    def acc_bits(self) -> int:
        return max(ly.acc_bits for ly in self.layers)

    def input_index(self) -> np.ndarray:
        """The event index of every pixel, in flat order (a conv first layer packs it:
        :meth:`ConvShape.index`)."""
        first = self.layers[0]
        return first.conv.flat_to_index() if first.conv else np.arange(first.n_in)


def result_layout(spec) -> data.StructLayout:
    """The result word of one image: the class, the compute cycles the accelerator counted and
    the events (nonzero inputs) of each layer, from the least significant bit up. The one
    definition: the RTL drives it, the protocol's RUN answer and the benches decode it."""
    return data.StructLayout({
        "cls": range(max(spec.num_classes, 2)),
        "cycles": CYCLE_BITS,
        "events": data.ArrayLayout(EVENT_COUNT_BITS, len(spec.layers)),
    })
