"""The event-driven gated-XNOR accelerator for an N-layer fully connected network.

Data path, per layer (see ``gxnor.hw.timing`` for the exact timing contract):

1. **Event lists** (two memories, ping-pong): the input stage writes only nonzero pixels, the
   output serializer writes only nonzero activations, so a layer's input arrives already
   compacted as (index, magnitude, sign) events. Replaying a list gives one event per cycle
   with no bubbles; zero activations cost no cycle at all.
2. **Issue**: for each group of P output neurons, the E events of the list are issued back to
   back, then an END token. Four register stages (``timing.PIPELINE``) read the event list,
   then the weight word (P two-bit codes, address = layer base + group * n_in + index); every
   block RAM output goes straight into a register.
3. **PE array** (:class:`~gxnor.hw.pe.PEArray`): P gated-XNOR accumulators.
4. **Serializer**: on END the accumulators move to a shadow bank; one neuron per cycle goes
   through the :class:`~gxnor.hw.threshold.ThresholdUnit` (hidden layers: its nonzero outputs
   are appended to the other event list) or the :class:`~gxnor.hw.threshold.ScoreUnit` and
   the argmax (last layer). It overlaps with the next group's accumulation.

Streams: ``pixels`` in (one uint8 per pixel, row-major); out: ``scores`` (one signed score per
class, in class order) then ``result`` (class, cycle count, events per layer) per image.
With ``loadable=True`` the weight memory starts empty (as iCE40 SPRAM does after
configuration) and a ``weights_in`` stream of (addr, data) words fills it, one word per cycle,
while the accelerator is idle (the iCE40 SPRAM path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from gxnor.base.errors import InputError
from gxnor.export import codes

from . import timing
from .codes import event_layout
from .pe import PEArray
from .threshold import ScoreUnit, ThresholdUnit, score_layout, threshold_layout

CYCLE_BITS = timing.CYCLE_BITS
EVENT_COUNT_BITS = timing.EVENT_COUNT_BITS


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

    @classmethod
    def from_export(cls, net, lanes: int | None = None) -> AcceleratorSpec:
        """From a checked export (:func:`gxnor.export.format.load`), for ``lanes`` lanes
        (default: the export's; other lane counts repack the same weights)."""
        lanes = net.lanes if lanes is None else lanes
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
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
                   last["score_bits"])

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


def result_layout(spec: AcceleratorSpec) -> data.StructLayout:
    return data.StructLayout({
        "cls": range(max(spec.num_classes, 2)),
        "cycles": CYCLE_BITS,
        "events": data.ArrayLayout(EVENT_COUNT_BITS, len(spec.layers)),
    })


def load_layout(spec: AcceleratorSpec) -> data.StructLayout:
    return data.StructLayout({
        "addr": range(max(spec.weight_words, 2)),
        "data": spec.word_bits,
    })


class Accelerator(wiring.Component):
    """The whole inference engine for one exported fully connected network.

    Parameters
    ----------
    spec: :class:`AcceleratorSpec` (``AcceleratorSpec.from_export(format.load(dir))``).
    loadable: no initial weights; add the ``weights_in`` stream that writes them
        (address = layer base + group * n_in + input, the order of the export's ROM images).
    external_weights: no weight memory inside; ``weight_addr`` out, ``weight_data`` in, read
        synchronously (data the cycle after the address), e.g. from SPRAM in a board top.

    Timing: per image, exactly ``gxnor.hw.timing.image_cycles(events, outputs, lanes)``
    cycles from the cycle after the last pixel is accepted until the class is known; input
    takes one cycle per pixel, output one cycle per score plus one for the result (with
    ``ready`` held high).
    """

    def __init__(self, spec: AcceleratorSpec, *, loadable: bool = False,
                 external_weights: bool = False):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        if spec.lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {spec.lanes}")
        if loadable and external_weights:
            raise ValueError("loadable and external_weights exclude each other: an external "
                             "weight memory is loaded by whoever owns it")
        self._spec = spec
        self._loadable = loadable
        self._external = external_weights
        ports = {
            "pixels": In(stream.Signature(unsigned(8))),
            "scores": Out(stream.Signature(signed(spec.score_bits))),
            "result": Out(stream.Signature(result_layout(spec))),
            "busy": Out(1),
        }
        if loadable:
            ports["weights_in"] = In(stream.Signature(load_layout(spec)))
        if external_weights:
            ports["weight_addr"] = Out(range(max(spec.weight_words, 2)))
            ports["weight_data"] = In(spec.word_bits)
        super().__init__(ports)

    @property
    def spec(self) -> AcceleratorSpec:
        return self._spec

    def elaborate(self, platform):
        spec = self._spec
        lanes, n_layers = spec.lanes, len(spec.layers)
        acc_bits = spec.acc_bits
        index_bits = max(1, (spec.event_depth - 1).bit_length())
        count_bits = index_bits + 1
        ev_shape = event_layout(index_bits)
        m = Module()

        # --- memories -------------------------------------------------------------------
        words = spec.words
        if self._external:
            # the memory lives outside (SPRAM / BRAM of the board top): synchronous read,
            # data the cycle after the address
            w_addr, w_data = self.weight_addr, self.weight_data
        else:
            # loadable: no initial contents (as iCE40 SPRAM); the weights_in stream fills it
            m.submodules.weights = wmem = memory.Memory(
                shape=unsigned(spec.word_bits), depth=len(words),
                init=[] if self._loadable else words)
            w_rd = wmem.read_port()
            w_addr, w_data = w_rd.addr, w_rd.data
        if self._loadable:
            w_wr = wmem.write_port()
            m.d.comb += [
                self.weights_in.ready.eq(1),
                w_wr.addr.eq(self.weights_in.payload.addr),
                w_wr.data.eq(self.weights_in.payload.data),
                w_wr.en.eq(self.weights_in.valid),
            ]
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
        m.submodules.score_buf = sbuf = memory.Memory(
            shape=signed(spec.score_bits), depth=last.n_out, init=[])
        sb_wr, sb_rd = sbuf.write_port(), sbuf.read_port()
        ev_mems = []
        for b in range(2):
            mem = memory.Memory(shape=ev_shape, depth=spec.event_depth, init=[])
            m.submodules[f"events{b}"] = mem
            ev_mems.append((mem.read_port(), mem.write_port()))
        ev_count = Array(Signal(count_bits, name=f"ev_count{b}") for b in range(2))

        # --- per-layer constants --------------------------------------------------------
        def table(values):
            width = max(1, max(int(v) for v in values).bit_length())
            return Array(Const(int(v), width) for v in values)

        wbase, tbase = [], []
        wa = ta = 0
        for ly in spec.layers:
            wbase.append(wa)
            tbase.append(ta)
            wa += len(ly.words)
            ta += ly.n_out
        groups = [math.ceil(ly.n_out / lanes) for ly in spec.layers]
        c_n_in = table([ly.n_in for ly in spec.layers])
        c_last_group = table([g - 1 for g in groups])
        c_last_size = table([timing.group_sizes(ly.n_out, lanes)[-1] for ly in spec.layers])
        c_wbase = table(wbase)
        c_tbase = table(tbase)

        layer = Signal(range(max(n_layers, 2)))
        is_last = layer == n_layers - 1
        src = layer[0]  # layer l reads event list l % 2 and writes the other one
        n_events = Signal(count_bits)
        k = Signal(count_bits)  # next event to issue
        g = Signal(range(max(max(groups), 2)))
        gbase = Signal(range(max(len(words), 2)))
        nbase = Signal(range(max(ly.n_out for ly in spec.layers) + lanes))
        cool = Signal(range(lanes + 1))
        cycle_count = Signal(CYCLE_BITS)
        events_seen = Array(Signal(EVENT_COUNT_BITS, name=f"events{i}") for i in range(n_layers))
        group_size = Signal(range(lanes + 1))
        m.d.comb += group_size.eq(Mux(g == c_last_group[layer], c_last_size[layer], lanes))

        # --- pipeline (timing.PIPELINE = 4 register stages from issue to the PE array) ----
        # p1: the event list answers (block RAM output)
        # p2: event registered; weight address = group base + event index
        # p3: the weight memory answers
        # p4: weight word registered; the PE array accumulates
        # Block RAM outputs only feed registers: they are slow (ECP5 EBR: 5.8 ns).
        token = data.StructLayout({"valid": 1, "end": 1, "gbase": len(gbase),
                                   "nbase": len(nbase), "size": len(group_size)})
        p1, p2, p3, p4 = (Signal(token, name=f"p{i}") for i in range(1, 5))
        p2_event, p4_event = Signal(ev_shape), Signal(ev_shape)
        p3_event = Signal(ev_shape)
        p4_weights = Signal(spec.word_bits)
        issue_valid, issue_end = Signal(), Signal()
        ev_data = Signal(ev_shape)
        m.d.comb += ev_data.eq(Mux(src, ev_mems[1][0].data, ev_mems[0][0].data))
        for rd, _ in ev_mems:
            m.d.comb += rd.addr.eq(k)
        m.d.sync += [
            p1.valid.eq(issue_valid), p1.end.eq(issue_end), p1.gbase.eq(gbase),
            p1.nbase.eq(nbase), p1.size.eq(group_size),
            p2.eq(p1), p2_event.eq(ev_data),
            p3.eq(p2), p3_event.eq(p2_event),
            p4.eq(p3), p4_event.eq(p3_event), p4_weights.eq(w_data),
        ]
        m.d.comb += w_addr.eq(p2.gbase + p2_event.index)
        s2_valid, s2_end, s2_nbase, s2_size = p4.valid, p4.end, p4.nbase, p4.size
        pipeline_busy = p1.valid | p2.valid | p3.valid | p4.valid

        m.submodules.pe = pe = PEArray(lanes, acc_bits)
        shift = Signal()
        m.d.comb += [
            pe.valid.eq(p4.valid), pe.end.eq(p4.end),
            pe.magnitude.eq(p4_event.magnitude), pe.sign.eq(p4_event.sign),
            pe.weights.eq(p4_weights), pe.shift.eq(shift),
        ]

        # --- output serializer: one neuron per cycle -----------------------------------
        ser_active = Signal()
        ser_lane = Signal(range(lanes + 1))
        ser_size = Signal.like(group_size)
        ser_nbase = Signal.like(nbase)
        trigger = s2_valid & s2_end
        neuron = ser_nbase + ser_lane
        m.d.comb += [
            t_rd.addr.eq(Mux(trigger, c_tbase[layer] + s2_nbase, c_tbase[layer] + neuron + 1)),
            s_rd.addr.eq(Mux(trigger, s2_nbase, neuron + 1)),
        ]
        m.submodules.threshold = thr = ThresholdUnit(acc_bits, spec.threshold_bits)
        m.submodules.score = score = ScoreUnit(acc_bits, spec.coef_bits, spec.offset_bits,
                                               spec.score_bits)
        # timing.SERIALIZER_LATENCY = 2 register stages: one between the serializer's reads (the
        # shadow accumulator, the threshold / score-parameter block RAMs) and the units, one
        # after the units (event-list write, or the score before the argmax)
        q_valid = Signal()
        q_acc = Signal.like(pe.shadow[0])
        q_thr = Signal.like(t_rd.data)
        q_par = Signal.like(s_rd.data)
        q_neuron = Signal.like(neuron)
        m.d.sync += [q_valid.eq(ser_active), q_acc.eq(pe.shadow[0]), q_thr.eq(t_rd.data),
                     q_par.eq(s_rd.data), q_neuron.eq(neuron)]
        m.d.comb += [thr.acc.eq(q_acc), thr.thresholds.eq(q_thr),
                     score.acc.eq(q_acc), score.params.eq(q_par)]
        best = Signal(signed(spec.score_bits))
        best_cls = Signal(range(max(spec.num_classes, 2)))
        dst_count = ev_count[~src]
        new_event = Signal(ev_shape)
        write_event = Signal()
        with m.If(ser_active):
            m.d.comb += shift.eq(1)
            m.d.sync += ser_lane.eq(ser_lane + 1)
            with m.If(ser_lane == ser_size - 1):
                m.d.sync += ser_active.eq(0)
        # hidden layers: the threshold outcome is registered, then appended to the event list
        r_valid, r_write, r_sign = Signal(), Signal(), Signal()
        r_neuron = Signal.like(neuron)
        m.d.sync += [r_valid.eq(q_valid & ~is_last),
                     r_write.eq(q_valid & ~is_last & thr.out.nonzero), r_sign.eq(thr.out.sign),
                     r_neuron.eq(q_neuron)]
        m.d.comb += [new_event.index.eq(r_neuron), new_event.magnitude.eq(1),
                     new_event.sign.eq(r_sign)]
        with m.If(r_write):
            m.d.comb += write_event.eq(1)
            m.d.sync += dst_count.eq(dst_count + 1)
        # last layer: the score is registered, then argmax and score buffer
        sc_valid = Signal()
        sc_value = Signal(signed(spec.score_bits))
        sc_neuron = Signal.like(neuron)
        m.d.sync += [sc_valid.eq(q_valid & is_last), sc_value.eq(score.score),
                     sc_neuron.eq(q_neuron)]
        with m.If(sc_valid):
            m.d.comb += [sb_wr.addr.eq(sc_neuron), sb_wr.data.eq(sc_value), sb_wr.en.eq(1)]
            with m.If((sc_neuron == 0) | (sc_value > best)):
                m.d.sync += [best.eq(sc_value), best_cls.eq(sc_neuron)]
        with m.If(trigger):
            m.d.sync += [ser_active.eq(1), ser_lane.eq(0), ser_size.eq(s2_size),
                         ser_nbase.eq(s2_nbase)]
        for b, (_, wr) in enumerate(ev_mems):
            m.d.comb += wr.data.eq(new_event)
            m.d.comb += wr.addr.eq(dst_count)
            m.d.comb += wr.en.eq(write_event & (~src == b))

        # --- control ---------------------------------------------------------------------
        pix_index = Signal(range(max(spec.n_pixels, 2)))
        out_index = Signal(range(max(spec.num_classes, 2)))
        m.d.comb += [
            self.result.payload.cls.eq(best_cls),
            self.result.payload.cycles.eq(cycle_count),
            self.scores.payload.eq(sb_rd.data),
            sb_rd.addr.eq(out_index),
        ]
        for i in range(n_layers):
            m.d.comb += self.result.payload.events[i].eq(events_seen[i])
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)

        with m.FSM(name="control"):
            with m.State("INPUT"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    wr0 = ev_mems[0][1]
                    with m.If(self.pixels.payload != 0):
                        m.d.comb += [
                            wr0.addr.eq(ev_count[0]),
                            wr0.data.index.eq(pix_index),
                            wr0.data.magnitude.eq(self.pixels.payload),
                            wr0.data.sign.eq(0),
                            wr0.en.eq(1),
                        ]
                        m.d.sync += ev_count[0].eq(ev_count[0] + 1)
                    m.d.sync += pix_index.eq(pix_index + 1)
                    with m.If(pix_index == spec.n_pixels - 1):
                        m.d.sync += [pix_index.eq(0), layer.eq(0), cycle_count.eq(0)]
                        m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [
                    cycle_count.eq(cycle_count + 1),
                    n_events.eq(ev_count[src]),
                    events_seen[layer].eq(ev_count[src]),
                    ev_count[~src].eq(0),
                    k.eq(0), g.eq(0), gbase.eq(c_wbase[layer]), nbase.eq(0), cool.eq(0),
                ]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cycle_count.eq(cycle_count + 1)
                with m.If(k != n_events):
                    m.d.comb += issue_valid.eq(1)
                    m.d.sync += k.eq(k + 1)
                with m.Elif(cool == 0):
                    # END token: this group's sums go to the serializer
                    m.d.comb += [issue_valid.eq(1), issue_end.eq(1)]
                    m.d.sync += [k.eq(0), cool.eq(group_size - 1)]
                    with m.If(g == c_last_group[layer]):
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.sync += [g.eq(g + 1), gbase.eq(gbase + c_n_in[layer]),
                                     nbase.eq(nbase + lanes)]
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cycle_count.eq(cycle_count + 1)
                with m.If(~pipeline_busy & ~ser_active & ~q_valid & ~r_valid & ~sc_valid):
                    with m.If(is_last):
                        m.d.sync += out_index.eq(0)
                        m.next = "FETCH"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        m.next = "SETUP"
            with m.State("FETCH"):  # score buffer read latency
                m.next = "SCORES"
            with m.State("SCORES"):
                m.d.comb += self.scores.valid.eq(1)
                with m.If(self.scores.ready):
                    m.d.sync += out_index.eq(out_index + 1)
                    with m.If(out_index == spec.num_classes - 1):
                        m.next = "RESULT"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.d.sync += ev_count[0].eq(0)
                    m.next = "INPUT"
        return m
