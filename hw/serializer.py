"""The output serializer: a finished group's sums, one neuron per cycle, through the output
units: thresholds (hidden layers) or fixed-point scores (the last layer)."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .spec import AcceleratorSpec
from .threshold import ScoreUnit, ThresholdUnit, score_layout, threshold_layout


def score_out_layout(spec: AcceleratorSpec) -> data.StructLayout:
    """A class score on its way to the argmax: its class and its value."""
    return data.StructLayout({"cls": range(max(spec.num_classes, 2)),
                              "score": signed(spec.score_bits)})


class Serializer(wiring.Component):
    """Takes a finished group of P sums and puts them through the output units one neuron per
    cycle, overlapped with the next group's accumulation.

    Hidden layers: the neuron's thresholds (from the threshold memory, every hidden layer's
    neurons in order) give a ternary output; a nonzero one leaves on ``events`` as an event of
    the next layer (index = the neuron, magnitude 1, the output's sign): zeros are never
    written. The last layer: the neuron's fixed-point score (coefficient and offset from the
    score-parameter memory) leaves on ``scores``.

    Parameters
    ----------
    spec: :class:`~gxnor.hw.spec.AcceleratorSpec`.
    sums: the layout of a finished group (:func:`gxnor.hw.pe.sums_layout`).
    event: the event layout.

    Members
    -------
    sums: In(stream(sums)) — always ready: a group arrives only when the previous one is
        through (n_g cycles after it arrived).
    events: Out(stream(event)) — the hidden layers' nonzero outputs; always ready downstream.
    scores: Out(stream(score_out_layout)) — the last layer's scores, in class order.
    busy: Out(1) — a group is being serialized.

    Timing: the neuron read in the cycle after the group arrives leaves ``latency`` cycles
    later: one register between the reads (the shadow accumulator, the block RAMs of the
    thresholds and score parameters) and the units, one after the units. One neuron per cycle.
    """

    latency = 2
    #: the output units (a variant may override them)
    ThresholdUnit, ScoreUnit = ThresholdUnit, ScoreUnit

    def __init__(self, spec: AcceleratorSpec, sums: data.Layout, event: data.Layout):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        self._spec = spec
        super().__init__({
            "sums": In(stream.Signature(sums, always_ready=True)),
            "events": Out(stream.Signature(event, always_ready=True)),
            "scores": Out(stream.Signature(score_out_layout(spec), always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        spec = self._spec
        lanes, acc_bits = spec.lanes, spec.acc_bits
        m = Module()

        # memories: every hidden layer's thresholds, the last layer's score parameters
        hidden = spec.layers[:-1]
        thr_shape = threshold_layout(spec.threshold_bits)
        thr_init = [thr_shape.const({"flip": f, "lo": lo, "hi": hi})
                    for ly in hidden for f, lo, hi in zip(ly.flip, ly.lo, ly.hi, strict=True)]
        m.submodules.thresholds = tmem = memory.Memory(
            shape=thr_shape, depth=max(len(thr_init), 1), init=thr_init)
        t_rd = tmem.read_port()
        last = spec.layers[-1]
        sc_shape = score_layout(spec.coef_bits, spec.offset_bits)
        m.submodules.score_params = smem = memory.Memory(
            shape=sc_shape, depth=last.n_out,
            init=[sc_shape.const({"coef": c, "offset": o})
                  for c, o in zip(last.coef, last.offset, strict=True)])
        s_rd = smem.read_port()

        # the shadow bank: the group's sums, shifted down one lane per cycle (lane 0 is read)
        shadow = Signal(data.ArrayLayout(signed(acc_bits), lanes))
        active = Signal()
        lane = Signal(range(lanes + 1))
        size = Signal.like(self.sums.payload.size)
        nbase = Signal.like(self.sums.payload.nbase)
        taddr = Signal.like(self.sums.payload.taddr)
        is_last = Signal()
        arrive = self.sums.valid
        neuron = nbase + lane
        with m.If(arrive):
            m.d.sync += [shadow.eq(self.sums.payload.acc), active.eq(1), lane.eq(0),
                         size.eq(self.sums.payload.size), nbase.eq(self.sums.payload.nbase),
                         taddr.eq(self.sums.payload.taddr), is_last.eq(self.sums.payload.last)]
        with m.Elif(active):
            for j in range(lanes):
                m.d.sync += shadow[j].eq(shadow[j + 1] if j + 1 < lanes else 0)
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == size - 1):
                m.d.sync += active.eq(0)
        # the memories are read one cycle ahead: the group's first neuron as it arrives
        m.d.comb += [
            t_rd.addr.eq(Mux(arrive, self.sums.payload.taddr, taddr + lane + 1)),
            s_rd.addr.eq(Mux(arrive, self.sums.payload.nbase, neuron + 1)),
        ]

        # register: the neuron's sum and parameters, then the units
        m.submodules.threshold = thr = self.ThresholdUnit(acc_bits, spec.threshold_bits)
        m.submodules.score = score = self.ScoreUnit(acc_bits, spec.coef_bits,
                                                    spec.offset_bits, spec.score_bits)
        q_valid, q_last = Signal(name="q_valid"), Signal(name="q_last")
        q_acc = Signal(signed(acc_bits))
        q_thr = Signal.like(t_rd.data)
        q_par = Signal.like(s_rd.data)
        q_neuron = Signal.like(neuron)
        m.d.sync += [q_valid.eq(active), q_last.eq(is_last), q_acc.eq(shadow[0]),
                     q_thr.eq(t_rd.data), q_par.eq(s_rd.data), q_neuron.eq(neuron)]
        m.d.comb += [thr.acc.eq(q_acc), thr.thresholds.eq(q_thr),
                     score.acc.eq(q_acc), score.params.eq(q_par)]

        # register: a nonzero output becomes an event, a score goes to the argmax
        r_valid = Signal(name="r_valid")
        m.d.sync += [
            r_valid.eq(q_valid & ~q_last),
            self.events.valid.eq(q_valid & ~q_last & thr.out.nonzero),
            self.events.payload.index.eq(q_neuron),
            self.events.payload.magnitude.eq(1),
            self.events.payload.sign.eq(thr.out.sign),
            self.scores.valid.eq(q_valid & q_last),
            self.scores.payload.cls.eq(q_neuron),
            self.scores.payload.score.eq(score.score),
        ]
        m.d.comb += self.busy.eq(active | q_valid | r_valid | self.scores.valid)
        return m
