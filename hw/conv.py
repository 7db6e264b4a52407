"""The event-driven convolution engine: a conv layer (stride 1, no padding, kernel k, integer
max-pooling) as a stage of the layer pipeline, built from the same blocks as a fully connected
one and with the same edges (``gxnor.hw.pipeline.LayerEngine``: event lists in, the next
layer's events or nothing out).

Scheme: **scatter**. An input event (channel c, row y, column x, value v) touches the k x k
outputs whose receptive field holds it, (y - ky, x - kx) for every tap (ky, kx); for a group
of P output channels, one token per event and tap adds the gated XNOR of v and the tap's P
weights (one weight word, address ``c * k^2 + ky * k + kx`` in the group's ROM image, the
export's order) to the P accumulators of that output position, which live in a block RAM of
one word per position (read, add, write back, one token a cycle). The work is E x k^2 x
ceil(C_out / P) tokens for E nonzero inputs: exactly the bound nnz(input) x k^2 x C_out / P,
and a zero activation costs no cycle. Taps that fall outside the map cost their cycle but
write nothing (their lanes' gates stay closed), as do zero weights.

The alternative, gathering per output row from line buffers, visits every input of every
output's window, zero or not: H' x W' x C_in x k^2 per group, and it needs k line buffers per
channel. Measured on a trained CNN (conv16k5-pool2-conv32k5-pool2-fc64-fc10, the 10,000 MNIST
test images, per image and group; docs/BENCHMARKS.md): the first layer (28 x 28 pixels, 19%
nonzero) takes 3,778 scatter tokens against 14,400 gathered products (3.8x fewer), and only
1% of its tokens fall off the map. The second (16 x 12 x 12 inputs, 76% nonzero, an 8 x 8
output) takes 43,630 tokens against 25,600: on a small map an event near the edge has most
of its taps outside, and only 19,262 of the tokens are taps on the map. Scatter stays the
scheme (it is the only one whose work follows the nonzero inputs); clipping each event's taps
to the map, which needs the event's row and column before its tokens are issued, is the next
step and makes it cheaper than gathering on both layers.

After a group's last token, the engine **drains** the accumulator RAM in pooled order: for
each pooled position it reads the pool x pool accumulators of the window (one a cycle, each
written back as zero the cycle after, ready for the next group), keeps each lane's maximum
(the golden model's max-pool on the integer accumulators, before the threshold: the
threshold unit then applies the flip of a negative batch-norm scale), and hands the P
maxima to the :class:`~gxnor.hw.serializer.Serializer` as a group of sums, which thresholds
them r a cycle and emits the nonzero ones as the next layer's events (index ``n * stride +
py * row_step + px``: :meth:`~gxnor.hw.spec.ConvShape.numbering`). Rows and columns that
pooling crops are never accumulated.

Timing (``gxnor.hw.timing``): the sequencer issues a group's E x k^2 tokens and an END token
back to back; the END reaches the PE array ``TO_PE`` cycles later, the drain's first read
comes ``ConvPEArray.DRAIN_START`` cycles after that, pooled position j is read from cycle
j x per on (per = max(pool^2, a full group's serializer cycles)) and its sums leave
``ConvPEArray.ANSWER_LAG`` cycles after its last read. The next group's first token waits
``ConvPEArray.credit`` cycles after the END (the drain is through and the RAM clear).
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .fetch import WeightFetch
from .layouts import TernaryCode
from .pe import PEArray
from .sequencer import LayerSequencer
from .serializer import serial_cycles
from .spec import ConvShape


class ConvSequencer(LayerSequencer):
    """Issues the work of one convolution layer, image after image: for each group of P output
    channels, one token per (event, tap), taps innermost (``koff`` = ky * k + kx), then an END
    token; the next group's first token (of this image or the next) waits until the drain of
    the group before is through (``ConvPEArray.credit`` cycles after its END).

    The image protocol and the members are :class:`~gxnor.hw.sequencer.LayerSequencer`'s
    (``full``, ``out_free``, ``start``, ``release``, ``clear``, ``buffer``); a convolution
    is never the last layer.
    """

    def __init__(self, layer, fold, token: data.Layout, count, buffers: int = 2):
        super().__init__(layer, fold, token, count, False, buffers)

    def elaborate(self, platform):
        ly, lanes, rate = self._layer, self._fold.lanes, self._fold.rate
        shape = ly.conv
        k = shape.kernel
        rshift = rate.bit_length() - 1
        m = Module()
        groups = math.ceil(ly.n_out / lanes)
        last_size = ly.n_out - (groups - 1) * lanes
        credit = [ConvPEArray.credit(shape, lanes, rate, lanes),
                  ConvPEArray.credit(shape, lanes, rate, last_size)]

        buf = self.buffer
        n_events = Signal.like(self.count[0])
        left = Signal.like(n_events)
        bundle = Signal.like(self.tokens.payload.pos)
        ky, kx = Signal(range(max(k, 2))), Signal(range(max(k, 2)))
        koff = Signal(range(max(k * k, 2)))
        g = Signal(range(max(groups, 2)))
        base = Signal.like(self.tokens.payload.base)
        nbase = Signal.like(self.tokens.payload.nbase)
        cool = Signal(range(max(credit) + 1))
        last_group = g == groups - 1
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)

        tok = self.tokens.payload
        m.d.comb += [tok.src.eq(buf), tok.buffer.eq(buf), tok.pos.eq(bundle),
                     tok.base.eq(base), tok.n.eq(left != 0), tok.koff.eq(koff),
                     tok.ky.eq(ky), tok.kx.eq(kx), tok.nbase.eq(nbase),
                     tok.taddr.eq(nbase >> rshift),
                     tok.size.eq(Mux(last_group, last_size, lanes)), tok.last.eq(0),
                     tok.image_end.eq(last_group)]

        with m.FSM(name="conv_sequencer"):
            with m.State("WAIT"):
                self.take_image(m, [n_events, left], [g, base, nbase, bundle, koff, ky, kx])
            with m.State("ISSUE"):
                m.d.comb += self.busy.eq(1)
                # (cool: the previous group's drain)
                with m.If((cool == 0) & (left != 0)):
                    m.d.comb += self.tokens.valid.eq(1)
                    with m.If(koff == k * k - 1):  # the event's last tap: the next event
                        m.d.sync += [koff.eq(0), ky.eq(0), kx.eq(0), bundle.eq(bundle + 1),
                                     left.eq(left - 1)]
                    with m.Else():
                        m.d.sync += koff.eq(koff + 1)
                        with m.If(kx == k - 1):
                            m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                        with m.Else():
                            m.d.sync += kx.eq(kx + 1)
                with m.Elif(cool == 0):
                    m.d.comb += [self.tokens.valid.eq(1), tok.end.eq(1), tok.n.eq(0)]
                    m.d.sync += [bundle.eq(0), left.eq(n_events),
                                 cool.eq(Mux(last_group, credit[1], credit[0]) - 1)]
                    self.next_group(m, last_group, g, base, nbase)
        return m


class ConvWeightFetch(WeightFetch):
    """The weight fetch of a convolution: the word of an event's tap, at the group's base plus
    ``c * k^2 + koff`` (c: the event's channel, from its packed index)."""

    def __init__(self, shape: ConvShape, *args, **kwargs):
        self._shape = shape
        super().__init__(*args, **kwargs)

    def address(self, tok, t: int):
        s = self._shape
        channel, _, _ = s.split(tok.event[t].index)
        return tok.base + channel * (s.kernel * s.kernel) + tok.koff


class ConvPEArray(wiring.Component):
    """P lanes of one convolution group, their accumulators in a block RAM of one word (P
    accumulators) per output position, then the max-pooling drain (module docstring).

    Parameters
    ----------
    lanes: P.
    acc_width: accumulator bits (signed).
    token: the token layout (with the kernel taps).
    shape: the layer's :class:`~gxnor.hw.spec.ConvShape`.
    row_step, stride: how the next layer numbers the outputs
        (:meth:`~gxnor.hw.spec.ConvShape.numbering`).
    sums: the layout of the sums handed to the serializer (:func:`gxnor.hw.pe.sums_layout`).
    rate: the serializer's rate r.

    Members
    -------
    tokens: In(stream(token)) — always ready.
    sums: Out(stream(sums)) — one pooled position of a group: the P maxima, ``nbase`` = the
        position's index of lane 0 in the next layer's numbering; always ready downstream
        (the drain's pace leaves the serializer the cycles it needs).
    busy: Out(1) — a token in the array, or a drain.

    Timing: a token's read of its position is ``TAKE_TO_READ`` cycles after it arrives, the
    answer is registered, and the write comes two cycles after the read. Updates of one
    position a cycle or two apart add up: the write of the token two ahead happens in the
    cycle of the read (the RAM's read port is transparent to its write port), the sums the
    token one ahead wrote are forwarded. The drain's first read is ``DRAIN_START`` cycles after
    the END token arrives; a position's sums leave ``ANSWER_LAG`` cycles after its last read.
    """

    #: cycles from a token's arrival to its accumulator read (the gated terms are registered)
    TAKE_TO_READ = 1
    #: cycles from the END token's arrival to the drain's first read
    DRAIN_START = 3
    #: cycles from a position's last read to its sums: the answer, registered, in the maximum
    ANSWER_LAG = 2

    @staticmethod
    def per_position(shape: ConvShape, lanes: int, rate: int) -> int:
        """Cycles the drain spends on a pooled position: the pool x pool reads, or the
        serializer's cycles for a full group of ``lanes`` at ``rate``, whichever is longer
        (the same for every group: a short last group is drained at the same pace)."""
        return max(shape.pool * shape.pool, serial_cycles(lanes, rate))

    @classmethod
    def credit(cls, shape: ConvShape, lanes: int, rate: int, size: int) -> int:
        """Cycles from a group's END token to the next group's first token (or END), for a
        group of ``size`` channels: the drain's reads and clears are done before that token
        reads the RAM (the END reaches the drain's first read ``DRAIN_START`` cycles after it
        reaches the array, a token its read ``TAKE_TO_READ`` after; the last clear is
        ``pool^2`` cycles after the last position's first read), the group's fields stay
        until its last sums have left (``ANSWER_LAG``), and the next group's first sums reach
        the serializer its cycles for this group or more after this group's last."""
        per = cls.per_position(shape, lanes, rate)
        pool2 = shape.pool * shape.pool
        return (shape.positions - 1) * per \
            + max(pool2 + cls.DRAIN_START - cls.TAKE_TO_READ + cls.ANSWER_LAG,
                  serial_cycles(size, rate))

    @classmethod
    def sums_after_end(cls, shape: ConvShape, lanes: int, rate: int) -> int:
        """Cycles from the END token's arrival at the array to the last pooled position's
        sums leaving it."""
        per = cls.per_position(shape, lanes, rate)
        return (cls.DRAIN_START + (shape.positions - 1) * per + shape.pool * shape.pool
                + cls.ANSWER_LAG)

    def __init__(self, lanes: int, acc_width: int, token: data.Layout, shape: ConvShape,
                 row_step: int, stride: int, sums: data.Layout, rate: int = 1):
        self._lanes, self._acc_width, self._shape = lanes, acc_width, shape
        self._row_step, self._stride, self._rate = row_step, stride, rate
        super().__init__({
            "tokens": In(stream.Signature(token, always_ready=True)),
            "sums": Out(stream.Signature(sums, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s, lanes = self._shape, self._lanes
        acc = signed(self._acc_width)
        word = data.ArrayLayout(acc, lanes)
        uh, uw, pool = s.used_height, s.used_width, s.pool
        m.submodules.accumulators = mem = memory.Memory(
            shape=word, depth=max(uh * uw, 2), init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))

        tok = self.tokens.payload
        ev = tok.event[0]
        codes = data.View(data.ArrayLayout(TernaryCode, lanes), tok.word[0][:2 * lanes])
        # stage 0 -> 1: the output position of the event's tap, whether it is on the map,
        # and each lane's gated term
        _, y, x = s.split(ev.index)
        oy, ox = y - tok.ky, x - tok.kx
        inside = (y >= tok.ky) & (x >= tok.kx) & (oy < uh) & (ox < uw)
        a1 = Signal(range(max(uh * uw, 2)), name="addr1")
        v1, e1 = Signal(name="update1"), Signal(name="end1")
        terms1 = Signal(data.ArrayLayout(signed(len(ev.magnitude) + 1), lanes), name="terms1")
        go = self.tokens.valid & ~tok.end & (tok.n != 0)
        m.d.sync += [a1.eq(oy * uw + ox), v1.eq(go & inside),
                     e1.eq(self.tokens.valid & tok.end)]
        for j in range(lanes):
            code = codes[j]
            gate = PEArray.gate(go & inside, tok.end, code)
            step = Mux(PEArray.agree(code.sign, ev.sign), ev.magnitude, -ev.magnitude)
            m.d.sync += terms1[j].eq(Mux(gate, step, 0))
        # the group's fields, from its END token
        fields = ("taddr", "size", "image_end", "buffer")
        group = {name: Signal.like(getattr(self.sums.payload, name), name=f"group_{name}")
                 for name in fields}
        gbase = Signal.like(self.sums.payload.nbase, name="group_base")
        with m.If(self.tokens.valid & tok.end):
            m.d.sync += [group[name].eq(getattr(tok, name)) for name in fields]
            m.d.sync += gbase.eq(tok.nbase * self._stride)

        # stage 1 -> 2: the read of the position; 2 -> 3: its answer registered (block RAM
        # outputs only feed registers: the answer into the adder, or into the pooling
        # comparators, was the ECP5's critical path at 61.9 MHz); 3: add and write back
        a2 = Signal.like(a1, name="addr2")
        v2, e2 = Signal(name="update2"), Signal(name="end2")
        terms2 = Signal.like(terms1, name="terms2")
        m.d.sync += [a2.eq(a1), v2.eq(v1), e2.eq(e1), terms2.eq(terms1)]
        a3 = Signal.like(a1, name="addr3")
        v3 = Signal(name="update3")
        terms3 = Signal.like(terms1, name="terms3")
        d3 = Signal(word, name="read3")
        m.d.sync += [a3.eq(a2), v3.eq(v2), terms3.eq(terms2), d3.eq(rd.data)]
        # the token one ahead wrote its position after this one's read: forward its sums
        a4 = Signal.like(a1, name="addr4")
        v4 = Signal(name="update4")
        total = Signal(word, name="updated")
        last_total = Signal(word, name="written")
        m.d.sync += [a4.eq(a3), v4.eq(v3), last_total.eq(total)]
        base = Mux(v4 & (a4 == a3), last_total.as_value(), d3.as_value())
        base = data.View(word, base)
        for j in range(lanes):
            m.d.comb += total[j].eq(base[j] + terms3[j])

        # the drain: pooled position (py, px), window tap (dy, dx), cycle w of the position
        per = self.per_position(s, lanes, self._rate)
        draining = Signal()
        py, px = Signal(range(max(s.pooled_height, 2))), Signal(range(max(s.pooled_width, 2)))
        dy, dx = Signal(range(max(pool, 2))), Signal(range(max(pool, 2)))
        w = Signal(range(max(per, 2)))
        origin = Signal(range(max(uh * uw, 2)))  # the window's top-left accumulator
        offset = Signal(range(max(uh * uw, 2)))  # dy * uw + dx
        pos = Signal.like(self.sums.payload.nbase)  # py * row_step + px
        reading = draining & (w < pool * pool)
        with m.If(e2):
            m.d.sync += [draining.eq(1), py.eq(0), px.eq(0), dy.eq(0), dx.eq(0), w.eq(0),
                         origin.eq(0), offset.eq(0), pos.eq(0)]
        with m.Elif(draining):
            m.d.sync += w.eq(w + 1)
            with m.If(reading):
                with m.If(dx == pool - 1):
                    m.d.sync += [dx.eq(0), dy.eq(dy + 1), offset.eq(offset + uw - (pool - 1))]
                with m.Else():
                    m.d.sync += [dx.eq(dx + 1), offset.eq(offset + 1)]
            with m.If(w == per - 1):
                m.d.sync += [w.eq(0), dx.eq(0), dy.eq(0), offset.eq(0)]
                with m.If(px == s.pooled_width - 1):
                    m.d.sync += [px.eq(0), py.eq(py + 1),
                                 origin.eq(origin + pool * uw - (s.pooled_width - 1) * pool),
                                 pos.eq(pos + self._row_step - (s.pooled_width - 1))]
                    with m.If(py == s.pooled_height - 1):
                        m.d.sync += draining.eq(0)
                with m.Else():
                    m.d.sync += [px.eq(px + 1), origin.eq(origin + pool), pos.eq(pos + 1)]
        # a read's answer next cycle: the position cleared; registered, into the maximum
        r_valid, r_first, r_last = Signal(name="r_valid"), Signal(name="r_first"), Signal(
            name="r_last")
        r_addr = Signal.like(a1, name="r_addr")
        r_end = Signal(name="r_end")
        r_pos = Signal.like(pos, name="r_pos")
        m.d.sync += [r_valid.eq(reading), r_first.eq(reading & (w == 0)),
                     r_last.eq(reading & (w == pool * pool - 1)), r_addr.eq(origin + offset),
                     r_end.eq((py == s.pooled_height - 1) & (px == s.pooled_width - 1)),
                     r_pos.eq(pos)]
        m.d.comb += [rd.addr.eq(Mux(reading, origin + offset, a1)),
                     wr.addr.eq(Mux(r_valid, r_addr, a3)),
                     wr.data.eq(Mux(r_valid, 0, total)),
                     wr.en.eq(r_valid | v3)]
        q_valid, q_first, q_last = Signal(name="q_valid"), Signal(name="q_first"), Signal(
            name="q_last")
        q_end, q_pos = Signal(name="q_end"), Signal.like(pos, name="q_pos")
        m.d.sync += [q_valid.eq(r_valid), q_first.eq(r_first), q_last.eq(r_valid & r_last),
                     q_end.eq(r_end), q_pos.eq(r_pos)]
        best = Signal(word, name="best")
        with m.If(q_valid):
            for j in range(lanes):
                with m.If(q_first | (d3[j] > best[j])):
                    m.d.sync += best[j].eq(d3[j])
        # the sums of a position: the cycle after its last answer is in the maximum
        out = self.sums.payload
        m.d.sync += [self.sums.valid.eq(q_last), out.nbase.eq(gbase + q_pos),
                     out.image_end.eq(group["image_end"] & q_end), out.last.eq(0)]
        m.d.sync += [getattr(out, name).eq(group[name])
                     for name in ("taddr", "size", "buffer")]
        m.d.comb += [out.acc.eq(best),
                     self.busy.eq(v1 | e1 | v2 | e2 | v3 | draining | r_valid | q_valid
                                  | self.sums.valid)]
        return m
