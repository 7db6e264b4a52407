"""The output serializer: a finished group's sums, one neuron per cycle, through the output
units: thresholds (hidden layers) or fixed-point scores (the last layer)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import bundle_layout
from .spec import AcceleratorSpec
from .threshold import ScoreUnit, ThresholdUnit, score_layout, threshold_layout


def serial_cycles(size: int, rate: int = 1) -> int:
    """Cycles the serializer spends on a group of ``size`` neurons, ``rate`` per cycle."""
    return -(-size // rate)


def score_out_layout(spec: AcceleratorSpec) -> data.StructLayout:
    """A class score on its way to the argmax: its class and its value."""
    return data.StructLayout({"cls": range(max(spec.num_classes, 2)),
                              "score": signed(spec.score_bits)})


class Serializer(wiring.Component):
    """Takes a finished group of P sums and puts them through the output units, overlapped
    with the next group's accumulation.

    Hidden layers, ``spec.rate`` (r) neurons per cycle: their thresholds (one row of the
    threshold memory, which holds every hidden layer's neurons in rows of r) give ternary
    outputs; the nonzero ones leave on ``events``, compacted into one bundle, as events of the
    next layer (index = the neuron, magnitude 1, the output's sign): zeros are never written.
    The last layer, one neuron per cycle: its fixed-point score (coefficient and offset from
    the score-parameter memory) leaves on ``scores``.

    Parameters
    ----------
    spec: :class:`~gxnor.hw.spec.AcceleratorSpec`.
    sums: the layout of a finished group (:func:`gxnor.hw.pe.sums_layout`).
    event: the event layout.
    hidden, scores: the layers it thresholds (default: every hidden layer of ``spec``) and
        whether it scores ``spec``'s last layer (an engine of the layer pipeline runs one).
    rate, lanes: r and P (default: ``spec``'s).
    out_banks: the slots of an output bundle (the banks of the event lists it writes).
    stride: the index distance between the outputs of neighbouring lanes: lane j of a group
        is output ``nbase + j * stride`` (1 for fc layers, whose lanes are neurons; a
        convolution's lanes are channels, ``nbase`` the pooled position's index in the next
        layer's numbering).

    Members
    -------
    sums: In(stream(sums)) — always ready: a group arrives only when the previous one is
        through (n_g cycles after it arrived).
    events: Out(stream(bundle)) — the hidden layers' nonzero outputs, up to r per cycle in
        slots 0 .. n-1; always ready downstream.
    scores: Out(stream(score_out_layout)) — the last layer's scores, in class order.
    busy: Out(1) — a group is being serialized.
    buffer: Out — the ``buffer`` of the group whose outputs (events or a score) leave in this
        cycle (the layer pipeline: the next stage's input list they go to).
    image_done: Out(1) — pulse: the last group of an image (``image_end``) is through: its
        last outputs leave in this cycle (``buffer`` is its buffer).

    Timing: the neurons read in the cycle after the group arrives leave ``latency`` cycles
    later: one register between the reads (the shadow accumulator, the block RAMs of the
    thresholds and score parameters) and the units, one after the units (which fire), one
    after the compaction of the firing ones into a bundle. ceil(n_g / r) cycles
    per group of a hidden layer, n_g per group of the last layer.
    """

    latency = 3
    #: the output units (a variant may override them)
    ThresholdUnit, ScoreUnit = ThresholdUnit, ScoreUnit

    def __init__(self, spec: AcceleratorSpec, sums: data.Layout, event: data.Layout, *,
                 hidden=None, scores: bool = True, rate: int | None = None,
                 out_banks: int | None = None, lanes: int | None = None, stride: int = 1):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        self._spec = spec
        self._hidden = tuple(spec.layers[:-1] if hidden is None else hidden)
        self._scores = scores
        self._rate = spec.rate if rate is None else rate
        self._lanes = spec.lanes if lanes is None else lanes
        self._stride = stride
        super().__init__({
            "sums": In(stream.Signature(sums, always_ready=True)),
            "events": Out(stream.Signature(
                bundle_layout(event, spec.banks if out_banks is None else out_banks),
                always_ready=True)),
            "scores": Out(stream.Signature(score_out_layout(spec), always_ready=True)),
            "busy": Out(1),
            "buffer": Out(sums["buffer"].shape),
            "image_done": Out(1),
        })

    def elaborate(self, platform):
        spec = self._spec
        lanes, r = self._lanes, self._rate
        acc_bits = len(self.sums.payload.acc[0])  # the PE array's accumulators
        rshift = r.bit_length() - 1
        m = Module()

        # memories: every hidden layer's thresholds in rows of r neurons (a layer starts on a
        # row of its own), the last layer's score parameters
        thr_shape = threshold_layout(spec.threshold_bits)
        row_shape = data.ArrayLayout(thr_shape, r)
        never = {"flip": 0, "lo": -(2 ** (spec.threshold_bits - 1)),
                 "hi": 2 ** (spec.threshold_bits - 1) - 1}  # padding: a neuron that is not there
        thr_init = []
        for ly in self._hidden:
            neurons = [{"flip": f, "lo": lo, "hi": hi}
                       for f, lo, hi in zip(ly.flip, ly.lo, ly.hi, strict=True)]
            neurons += [never] * (-len(neurons) % r)
            thr_init += [row_shape.const(neurons[i:i + r]) for i in range(0, len(neurons), r)]
        m.submodules.thresholds = tmem = memory.Memory(
            shape=row_shape, depth=max(len(thr_init), 1), init=thr_init)
        t_rd = tmem.read_port()
        last = spec.layers[-1]
        sc_shape = score_layout(spec.coef_bits, spec.offset_bits)
        params = [sc_shape.const({"coef": c, "offset": o})
                  for c, o in zip(last.coef, last.offset, strict=True)] if self._scores else []
        m.submodules.score_params = smem = memory.Memory(
            shape=sc_shape, depth=max(len(params), 1), init=params)
        s_rd = smem.read_port()

        # the shadow bank: the group's sums, shifted down r lanes per cycle (hidden layers) or
        # one (the last layer's scores); lanes 0 .. r-1 are read
        shadow = Signal(data.ArrayLayout(signed(acc_bits), lanes))
        active = Signal()
        lane = Signal(range(lanes + r))
        size = Signal.like(self.sums.payload.size)
        nbase = Signal.like(self.sums.payload.nbase)
        taddr = Signal.like(self.sums.payload.taddr)
        is_last = Signal()
        image_end = Signal()
        buffer = Signal.like(self.sums.payload.buffer)
        arrive = self.sums.valid
        stride = self._stride
        neuron = nbase + lane * stride if stride != 1 else nbase + lane
        only_scores, only_hidden = not self._hidden, not self._scores
        step = 1 if only_scores else r if only_hidden else Mux(is_last, 1, r)
        with m.If(arrive):
            m.d.sync += [shadow.eq(self.sums.payload.acc), active.eq(1), lane.eq(0),
                         size.eq(self.sums.payload.size), nbase.eq(self.sums.payload.nbase),
                         taddr.eq(self.sums.payload.taddr), is_last.eq(self.sums.payload.last),
                         image_end.eq(self.sums.payload.image_end),
                         buffer.eq(self.sums.payload.buffer)]
        with m.Elif(active):
            # a serializer of one kind of layer shifts by a constant (no mux per bit)
            for j in range(lanes):
                one = shadow[j + 1] if j + 1 < lanes else 0
                many = shadow[j + r] if j + r < lanes else 0
                m.d.sync += shadow[j].eq(one if only_scores else many if only_hidden
                                         else Mux(is_last, one, many))
            m.d.sync += lane.eq(lane + step)
            with m.If(lane + step >= size):
                m.d.sync += active.eq(0)
        # the memories are read one cycle ahead: the group's first neurons as it arrives
        m.d.comb += [
            t_rd.addr.eq(Mux(arrive, self.sums.payload.taddr, taddr + (lane >> rshift) + 1)),
            s_rd.addr.eq(Mux(arrive, self.sums.payload.nbase, neuron + 1)),
        ]

        # register: the neurons' sums and parameters, then the units
        q_valid, q_last = Signal(name="q_valid"), Signal(name="q_last")
        q_acc = Signal(data.ArrayLayout(signed(acc_bits), r))
        q_here = Signal(r)  # which of the r lanes hold a neuron of the group
        q_thr = Signal.like(t_rd.data)
        q_par = Signal.like(s_rd.data)
        q_neuron = Signal.like(neuron)
        q_end = Signal(name="q_end")  # the image's last row
        q_buffer = Signal.like(buffer, name="q_buffer")
        m.d.sync += [q_valid.eq(active), q_last.eq(is_last), q_thr.eq(t_rd.data),
                     q_par.eq(s_rd.data), q_neuron.eq(neuron),
                     q_end.eq(active & image_end & (lane + step >= size)),
                     q_buffer.eq(buffer)]
        for i in range(r):
            m.d.sync += [q_acc[i].eq(shadow[i]), q_here[i].eq(lane + i < size)]
        units = []
        for i in range(r):
            m.submodules[f"threshold{i}" if r > 1 else "threshold"] = thr = \
                self.ThresholdUnit(acc_bits, spec.threshold_bits)
            m.d.comb += [thr.acc.eq(q_acc[i]), thr.thresholds.eq(q_thr[i])]
            units.append(thr)
        m.submodules.score = score = self.ScoreUnit(acc_bits, spec.coef_bits,
                                                    spec.offset_bits, spec.score_bits)
        # a sliced last layer (spec.slices = S): a class's sum is its S lanes' sums, one in
        # each slice of P/S lanes (the whole sum fits the accumulator: so does each part)
        n_s = spec.slices if self._scores else 1
        q_score_acc = q_acc[0]
        if n_s > 1:
            q_score_acc = Signal(signed(acc_bits), name="q_score_acc")
            m.d.sync += q_score_acc.eq(sum(shadow[s * (lanes // n_s)] for s in range(n_s)))
        m.d.comb += [score.acc.eq(q_score_acc), score.params.eq(q_par)]

        # register: which neurons fire and their signs, the score (the comparisons and the
        # compaction below in one cycle were the ECP5's critical path at rate 8: 44 MHz)
        fires = [Signal(name=f"fires{i}") for i in range(r)]
        signs = [Signal(name=f"signs{i}") for i in range(r)]
        f_valid, f_last, f_end = Signal(name="f_valid"), Signal(name="f_last"), Signal()
        f_buffer = Signal.like(q_buffer)
        f_index = [Signal(len(q_neuron) + ((r - 1) * stride).bit_length(), name=f"f_index{i}")
                   for i in range(r)]  # the row's neurons (the last layer's: f_index[0])
        m.d.sync += [f_index[i].eq(q_neuron + i * stride) for i in range(r)]
        f_score = Signal.like(self.scores.payload.score)
        for i, thr in enumerate(units):
            m.d.sync += [fires[i].eq(q_valid & ~q_last & q_here[i] & thr.out.nonzero),
                         signs[i].eq(thr.out.sign)]
        m.d.sync += [f_valid.eq(q_valid), f_last.eq(q_last), f_end.eq(q_end),
                     f_buffer.eq(q_buffer), f_score.eq(score.score)]

        # register: the nonzero outputs, compacted, become events; a score goes to the argmax
        out = self.events.payload
        r_valid = Signal(name="r_valid")  # a row of a hidden layer leaves (firing or not)
        m.d.sync += [
            r_valid.eq(f_valid & ~f_last),
            self.events.valid.eq(Cat(*fires).any()),
            out.n.eq(_count(m, fires, "fired")),
            self.scores.valid.eq(f_valid & f_last),
            self.scores.payload.cls.eq(f_index[0]),
            self.scores.payload.score.eq(f_score),
            self.image_done.eq(f_end),  # with the row's outputs
            self.buffer.eq(f_buffer),
        ]
        # output slot s takes the s-th firing neuron: the one with s firing neurons before it.
        # The counts are lookup tables and the slots AND-OR selects, not a chain of adders
        # and a priority mux (rate 8 on the ECP5: 64 MHz with the chain)
        before = [_count(m, fires[:i], f"before{i}") for i in range(r)]
        for s in range(r):
            picks = []
            for i in range(s, r):
                here = Signal(name=f"slot{s}_from{i}")
                m.d.comb += here.eq(fires[i] & (before[i] == s))
                picks.append((here, i))
            m.d.sync += [
                out.events[s].index.eq(_any_of([(h, f_index[i]) for h, i in picks],
                                               len(f_index[0]))),
                out.events[s].magnitude.eq(1),
                out.events[s].sign.eq(_any_of([(h, signs[i]) for h, i in picks], 1)),
            ]
        m.d.comb += self.busy.eq(active | q_valid | f_valid | r_valid | self.scores.valid)
        return m


def _count(m: Module, bits, name: str, table: int = 6):
    """The number of set ``bits``: a lookup table per ``table`` bits (a LUT or two each),
    the tables' counts added."""
    if not bits:
        return Const(0, 1)
    parts = []
    for c in range(0, len(bits), table):
        chunk = bits[c:c + table]
        n = Signal(range(len(chunk) + 1), name=f"{name}_{c // table}")
        with m.Switch(Cat(*chunk)):
            for v in range(2 ** len(chunk)):
                with m.Case(v):
                    m.d.comb += n.eq(bin(v).count("1"))
        parts.append(n)
    return sum(parts[1:], parts[0])


def _any_of(picks, width: int):
    """The value of the one pick whose condition holds (at most one does), 0 if none: an
    AND-OR."""
    out = Const(0, width)
    for cond, value in picks:
        out = out | Mux(cond, value, 0)
    return out
