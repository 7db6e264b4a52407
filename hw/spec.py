"""What the accelerator is built from: the integers of an export (:class:`AcceleratorSpec`),
and the layouts of the words that cross its boundary (the result word, the weight load)."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import data

from gxnor.base.errors import InputError
from gxnor.export import codes

#: widths of the counters reported with every result (see :func:`result_layout`)
CYCLE_BITS = 32
EVENT_COUNT_BITS = 16


@dataclass(frozen=True)
class LayerSpec:
    n_in: int
    n_out: int
    acc_bits: int
    words: tuple[int, ...]  # ROM words, lane j at bits [2j+1:2j]
    flip: tuple[int, ...] = ()
    lo: tuple[int, ...] = ()
    hi: tuple[int, ...] = ()
    coef: tuple[int, ...] = ()
    offset: tuple[int, ...] = ()


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

    @classmethod
    def from_export(cls, net, lanes: int | None = None, *, ports: int = 1,
                    rate: int = 1) -> AcceleratorSpec:
        """From a checked export (:func:`gxnor.export.format.load`), for ``lanes`` lanes
        (default: the export's; other lane counts repack the same weights), ``ports`` events
        and ``rate`` neurons per cycle."""
        lanes = net.lanes if lanes is None else lanes
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        for name, v in (("ports", ports), ("rate", rate)):
            if v < 1 or v & (v - 1) or v > 64:
                raise InputError(f"--{name} must be a power of two in 1..64, got {v}")
        if lanes % rate:
            raise InputError(f"--rate {rate} must divide --lanes {lanes} (a group's neurons "
                             "go through the serializer in rows of rate)")
        if net.n_bits > 1:
            raise InputError(f"{net.dir}: weights are Z_{net.n_bits}; the gated-XNOR array "
                             "runs binary (N=0) and ternary (N=1) weights only")
        layers = []
        tbits = 2
        last = net.layers[-1].spec["output"]
        for layer in net.layers:
            if layer.type != "fc":
                raise InputError(f"{net.dir}: layers[{layer.index}] is {layer.type!r}; the "
                                 "accelerator runs fully connected layers only (so far)")
            out = layer.spec["output"]
            if layer.is_last:
                layers.append(LayerSpec(layer.n_in, layer.n_out, layer.spec["acc_bits"],
                                        tuple(layer.words_for(lanes, net.n_bits)),
                                        coef=tuple(out["coef"]),
                                        offset=tuple(out["offset"])))
            else:
                tbits = max(tbits, out["threshold_bits"])
                layers.append(LayerSpec(layer.n_in, layer.n_out, layer.spec["acc_bits"],
                                        tuple(layer.words_for(lanes, net.n_bits)),
                                        tuple(out["flip"]),
                                        tuple(out["lo"]), tuple(out["hi"])))
        if net.layers[0].n_in > 2**16 or any(ly.n_out > 2**16 for ly in layers):
            raise InputError(f"{net.dir}: layers wider than 65536 are not supported")
        return cls(lanes, tuple(layers), tbits, last["coef_bits"], last["offset_bits"],
                   last["score_bits"], ports, rate)

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


def result_layout(spec: AcceleratorSpec) -> data.StructLayout:
    """The result word of one image: the class, the compute cycles the accelerator counted and
    the events (nonzero inputs) of each layer, from the least significant bit up. The one
    definition: the RTL drives it, the protocol's RUN answer and the benches decode it."""
    return data.StructLayout({
        "cls": range(max(spec.num_classes, 2)),
        "cycles": CYCLE_BITS,
        "events": data.ArrayLayout(EVENT_COUNT_BITS, len(spec.layers)),
    })
