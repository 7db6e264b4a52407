"""The event-driven convolution engine: a conv layer (stride 1, no padding, kernel k, integer
max-pooling) as a stage of the layer pipeline, built from the same blocks as a fully connected
one and with the same edges (``gxnor.hw.pipeline.LayerEngine``: event lists in, the next
layer's events or nothing out).

Scheme: **scatter**. An input event (channel c, row y, column x, value v) touches the k x k
outputs whose receptive field holds it, (y - ky, x - kx) for every tap (ky, kx); for a group
of P output channels, a token carries one event and a *tile* of T taps (the fold's ports:
part of a kernel row, T <= k, or T / k whole rows; :func:`tile`) and adds, for each tap, the
gated XNOR of v and the tap's P weights to the P accumulators of that tap's output position.
The accumulators live in T block RAMs, *banks* by output position (row modulo the tile's
rows, column modulo its columns), one word of P accumulators per position: the T outputs of
a token lie in T different banks, so each bank reads, adds and writes back one word a cycle
(bank b takes the tap whose output falls in it: the tile's codes rotated by the event's
position). One weight word holds a token's T x P codes (:func:`tile_words` repacks the
export's ROM image). The work is E x ceil(k / rows) x ceil(k / columns) tokens a group for E
nonzero inputs: with one tap a token E x k^2 x ceil(C_out / P), exactly the bound nnz(input)
x k^2 x C_out / P; with T taps a token, T times fewer cycles (where T divides the kernel's
rows or columns). A zero activation costs no cycle. Taps that fall outside the map or the
kernel cost nothing extra but write nothing (their gates stay closed), as do zero weights.

The alternative, gathering per output row from line buffers, visits every input of every
output's window, zero or not: H' x W' x C_in x k^2 per group, and it needs k line buffers per
channel. Measured on a trained CNN (conv16k5-pool2-conv32k5-pool2-fc64-fc10, the 10,000 MNIST
test images, per image and group; docs/BENCHMARKS.md): the first layer (28 x 28 pixels, 19%
nonzero) takes 3,778 scatter tokens against 14,400 gathered products (3.8x fewer), and only
1% of its tokens fall off the map. The second (16 x 12 x 12 inputs, 76% nonzero, an 8 x 8
output) takes 43,630 tokens against 25,600: on a small map an event near the edge has most
of its taps outside, and only 19,262 of the tokens are taps on the map. Scatter stays the
scheme (it is the only one whose work follows the nonzero inputs), and the tiles take the
taps that fall off the map in parallel with those on it: with whole kernel rows a token the
second layer takes 8,726 cycles a group and with the whole kernel 1,745, against 25,600
gathered products. (Clipping each event's taps to the map, which needs the event's row and
column before its tokens are issued, would save the off-map tokens of a partial tile; not
built.)

After a group's last token, the engine **drains** the accumulator RAM in pooled order: for
each pooled position it reads the pool x pool accumulators of the window (one a cycle, each
written back as zero the cycle after, ready for the next group), keeps each lane's maximum
(the golden model's max-pool on the integer accumulators, before the threshold: the
threshold unit then applies the flip of a negative batch-norm scale), and hands the P
maxima to the :class:`~gxnor.hw.serializer.Serializer` as a group of sums, which thresholds
them r a cycle and emits the nonzero ones as the next layer's events (index ``n * stride +
py * row_step + px``: :meth:`~gxnor.hw.spec.ConvShape.numbering`). Rows and columns that
pooling crops are never accumulated.

Timing (``gxnor.hw.timing``): the sequencer issues a group's E x :func:`tokens_per_event`
tokens and an END token
back to back; the END reaches the PE array ``TO_PE`` cycles later, the drain's first read
comes ``ConvPEArray.DRAIN_START`` cycles after that, pooled position j is read from cycle
j x per on (per = max(pool^2, a full group's serializer cycles)) and its sums leave
``ConvPEArray.ANSWER_LAG`` cycles after its last read. The next group's first token waits
``ConvPEArray.credit`` cycles after the END (the drain is through and the RAM clear).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .fetch import WeightFetch
from .layouts import TernaryCode
from .pe import PEArray
from .sequencer import LayerSequencer
from .serializer import serial_cycles
from .spec import ConvShape


def tile(kernel: int, taps: int) -> tuple[int, int]:
    """The kernel taps a token covers, (rows, columns): ``taps`` <= k: a segment of one row;
    a multiple of k: ``taps / k`` whole rows (:func:`~gxnor.hw.spec.conv_taps` lists the
    allowed ones)."""
    return (1, taps) if taps <= kernel else (taps // kernel, kernel)


def segments(kernel: int, taps: int) -> tuple[int, int]:
    """Tokens that cover the kernel, (down, across): ceil(k / rows), ceil(k / columns)."""
    ty, tx = tile(kernel, taps)
    return -(-kernel // ty), -(-kernel // tx)


def tokens_per_event(shape: ConvShape, taps: int) -> int:
    """Tokens a convolution engine issues per input event and group: one per tile of the
    kernel (one tap a token: k^2; a whole row: k; the whole kernel: 1)."""
    sy, sx = segments(shape.kernel, taps)
    return sy * sx


def bank_rows(shape: ConvShape, taps: int) -> tuple[int, int]:
    """The accumulator banks' geometry for ``taps`` taps a token (one bank per tap of the
    tile): (words of a bank per row of its output rows, words of a bank). Output (oy, ox)
    is word ``(oy // rows) * row_words + ox // columns`` of bank (oy mod rows, ox mod
    columns)."""
    ty, tx = tile(shape.kernel, taps)
    row_words = -(-shape.used_width // tx)
    return row_words, -(-shape.used_height // ty) * row_words


def tile_words(words, shape: ConvShape, n_in: int, lanes: int, taps: int) -> list[int]:
    """A convolution's weight words for ``taps`` taps per token: the export's ROM image
    (``words``: per group of ``lanes`` output channels, ``n_in`` = C x k^2 words of P
    two-bit codes, address ``c * k^2 + ky * k + kx``) repacked so that one word holds the
    taps of a token. Token (sy, sx) of channel c is word ``c * Sy * Sx + sy * Sx + sx`` of
    its group (:func:`segments`); its tap (ty, tx), kernel tap (sy * rows + ty, sx * columns
    + tx), is at bits [2P(i+1)-1 : 2Pi], i = ty * columns + tx (:func:`tile`); taps past the
    kernel are zero weights (their gates stay closed)."""
    k, bits = shape.kernel, 2 * lanes
    (ty, tx), (sy, sx) = tile(k, taps), segments(k, taps)
    out = []
    for g in range(len(words) // n_in):
        for c in range(shape.channels):
            for a in range(sy):
                for b in range(sx):
                    word = 0
                    for i in range(ty):
                        for j in range(tx):
                            ky, kx = a * ty + i, b * tx + j
                            if ky < k and kx < k:
                                w = words[g * n_in + (c * k + ky) * k + kx]
                                word |= int(w) << (bits * (i * tx + j))
                    out.append(word)
    return out


def divmod_const(value, divisor: int):
    """(value // divisor, value % divisor) of an unsigned Amaranth value (or an int): bit
    fields for a power of two, else a table over the value's range."""
    if isinstance(value, int):
        return divmod(value, divisor)
    if divisor & (divisor - 1) == 0:
        shift = divisor.bit_length() - 1
        return value >> shift, (value[:shift] if shift else 0)
    span = 1 << len(value)
    quo = Array(Const(v // divisor, range(max(span // divisor + 1, 2))) for v in range(span))
    rem = Array(Const(v % divisor, range(max(divisor, 2))) for v in range(span))
    return quo[value], rem[value]


def axis_decode(kernel: int, size: int, used: int, v_bits: int, segs: int) -> list[list]:
    """The per-bank decode of an event's coordinate along one axis, as a table: entry
    ``v | seg << v_bits`` (v the event's row or column, seg the token's tile down or across
    the kernel) holds, for each bank index b (0 .. size - 1, ``size`` taps of the tile on
    this axis), (tap, q, ok): the tap of the tile that bank takes, ((v - b) mod size), the
    quotient of its output coordinate ``v - seg * size - tap`` by ``size`` (that output is
    ``q * size + b``), and whether the output is on the map (0 .. used - 1) and the tap in the
    kernel (``seg * size + tap < kernel``); q = 0 where not ok."""
    table = []
    for seg in range(segs):
        for v in range(1 << v_bits):
            vq, vm = divmod(v, size)
            row = []
            for b in range(size):
                borrow = vm < b
                tap = vm - b + (size if borrow else 0)
                q = vq - seg - borrow
                ok = 0 <= q <= (used - 1 - b) // size and seg * size + tap < kernel
                row.append((tap, q if ok else 0, int(ok)))
            table.append(row)
    return table


class ConvSequencer(LayerSequencer):
    """Issues the work of one convolution layer, image after image: for each group of P output
    channels, one token per (event, tile of the kernel), tiles innermost (``ky``, ``kx``: the
    tile's place down and across the kernel, ``koff`` = ky * Sx + kx; :func:`segments`), then
    an END token; the next group's first token (of this image or the next) waits until the drain of
    the group before is through (``ConvPEArray.credit`` cycles after its END).

    The image protocol and the members are :class:`~gxnor.hw.sequencer.LayerSequencer`'s
    (``full``, ``out_free``, ``start``, ``release``, ``clear``, ``buffer``); a convolution
    is never the last layer.
    """

    def __init__(self, layer, fold, token: data.Layout, count, buffers: int = 2):
        super().__init__(layer, fold, token, count, False, buffers)

    @property
    def group_words(self) -> int:
        shape = self._layer.conv
        return shape.channels * tokens_per_event(shape, self._fold.ports)

    def elaborate(self, platform):
        ly, lanes, rate = self._layer, self._fold.lanes, self._fold.rate
        shape = ly.conv
        k = shape.kernel
        down, across = segments(k, self._fold.ports)  # tokens down and across the kernel
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
        # the token's tile of the kernel: ky down, kx across (koff = ky * across + kx)
        ky, kx = Signal(range(max(down, 2))), Signal(range(max(across, 2)))
        koff = Signal(range(max(down * across, 2)))
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
                    with m.If(koff == down * across - 1):  # the event's last token: next
                        m.d.sync += [koff.eq(0), ky.eq(0), kx.eq(0), bundle.eq(bundle + 1),
                                     left.eq(left - 1)]
                    with m.Else():
                        m.d.sync += koff.eq(koff + 1)
                        with m.If(kx == across - 1):
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
    """The weight fetch of a convolution: the word of a token's taps (:func:`tile_words`), at
    the group's base plus ``c * Sy * Sx + koff`` (c: the event's channel, from its packed
    index; ``koff`` = sy * Sx + sx the token's tile)."""

    def __init__(self, shape: ConvShape, taps: int, *args, **kwargs):
        self._shape, self._taps = shape, taps
        super().__init__(*args, **kwargs)

    def address(self, tok, t: int):
        s = self._shape
        channel, _, _ = s.split(tok.event[t].index)
        return tok.base + channel * tokens_per_event(s, self._taps) + tok.koff


class ConvPEArray(wiring.Component):
    """P lanes of one convolution group, ``taps`` kernel taps a token, their accumulators in
    block RAM, then the max-pooling drain (module docstring).

    A token carries one event at (y, x) and a tile of R x C kernel taps (:func:`tile`; T =
    R C), rows ``sy * R + i``, columns ``sx * C + j``: they add to the outputs (y - sy R - i,
    x - sx C - j), an R x C block of neighbouring positions. The accumulators are T banks,
    bank (a, b) holding the outputs (oy, ox) with oy = a (mod R) and ox = b (mod C), one word
    of P accumulators at ``(oy // R) * ceil(W' / C) + ox // C``, so the T updates of a token
    go to T different banks in the same cycle; bank (a, b) takes tap ((y - a) mod R, (x - b)
    mod C) of the tile (the codes rotated by the event's row, then column).

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
    taps: T, the kernel taps of a token (1 .. k, or whole rows: a multiple of k).

    Members
    -------
    tokens: In(stream(token)) — always ready.
    sums: Out(stream(sums)) — one pooled position of a group: the P maxima, ``nbase`` = the
        position's index of lane 0 in the next layer's numbering; always ready downstream
        (the drain's pace leaves the serializer the cycles it needs).
    busy: Out(1) — a token in the array, or a drain.

    Timing: a token's reads of its positions are ``TAKE_TO_READ`` cycles after it arrives,
    the answers are registered, and the writes come two cycles after the reads. Updates of
    one position a cycle or two apart add up: the write of the token two ahead happens in
    the cycle of the read (each bank's read port is transparent to its write port), the sums
    the token one ahead wrote are forwarded. The drain's first read is ``DRAIN_START`` cycles
    after the END token arrives; a position's sums leave ``ANSWER_LAG`` cycles after its
    last read.
    """

    #: cycles from a token's arrival to its accumulator read (its position decoded, then the
    #: gated terms, registered)
    TAKE_TO_READ = 2
    #: cycles from the END token's arrival to the drain's first read (its address registered)
    DRAIN_START = 5
    #: cycles from a position's last read to its sums: the answer registered, its bank's
    #: chosen, in the maximum
    ANSWER_LAG = 3

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
                 row_step: int, stride: int, sums: data.Layout, rate: int = 1, taps: int = 1):
        self._lanes, self._acc_width, self._shape = lanes, acc_width, shape
        self._row_step, self._stride, self._rate, self._taps = row_step, stride, rate, taps
        super().__init__({
            "tokens": In(stream.Signature(token, always_ready=True)),
            "sums": Out(stream.Signature(sums, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s, lanes, taps = self._shape, self._lanes, self._taps
        acc = signed(self._acc_width)
        word = data.ArrayLayout(acc, lanes)
        uh, uw, pool = s.used_height, s.used_width, s.pool
        (ty, tx), k = tile(s.kernel, taps), s.kernel
        row_words, depth = bank_rows(s, taps)
        depth = max(depth, 2)

        def address(row_quotient, col_quotient):
            """A position's word in its bank (:func:`bank_rows`)."""
            return row_quotient * row_words + col_quotient

        banks = []  # bank by * tx + bx: the outputs (oy, ox) with oy = by (mod ty), ox = bx
        for i in range(ty * tx):
            m.submodules[f"accumulators{i}"] = mem = memory.Memory(
                shape=word, depth=depth, init=[])
            wr = mem.write_port()
            banks.append((mem.read_port(transparent_for=(wr,)), wr))

        tok = self.tokens.payload
        ev = tok.event[0]
        go = self.tokens.valid & ~tok.end & (tok.n != 0)
        # stage 0 -> A, per bank: which tap of the tile it takes, the quotient of its
        # output's row / column by the tile's, whether the output is on the map and the tap
        # in the kernel (registered: the position's decode and the taps' fan-out into every
        # lane were one path, 38.6 MHz on the ECP5)
        _, y, x = s.split(ev.index)

        def axis(v, seg, size, used, name):
            """Per bank index b along one axis (``size`` taps of the tile), registered: the
            tile tap it takes, the quotient of its output coordinate (v - seg * size - tap)
            by ``size``, and whether that output is on the map and the tap in the kernel; a
            table over (v, seg) (:func:`axis_decode`: a few inputs, so one or two LUT levels
            where the arithmetic was the paper CNN's critical path at 72.5 MHz)."""
            v, seg = Value.cast(v), Value.cast(seg)
            table = axis_decode(k, size, used, len(v), 1 << len(seg))
            q_shape = range(max(-(-used // size), 2))
            t_shape = range(max(size, 2))
            entry = data.StructLayout({"tap": t_shape, "q": q_shape, "ok": 1})
            rom = Array(Const(sum(entry.const({"tap": t, "q": q, "ok": ok}).as_bits()
                                  << (entry.size * b) for b, (t, q, ok) in enumerate(row)),
                              entry.size * size) for row in table)
            looked = rom[Cat(v, seg)] if len(seg) else rom[v]
            out = []
            for b in range(size):
                got = data.View(entry, looked[entry.size * b:entry.size * (b + 1)])
                t = Signal(t_shape, name=f"{name}_tap{b}", reset_less=True)
                q = Signal(q_shape, name=f"{name}_q{b}", reset_less=True)
                ok = Signal(name=f"{name}_ok{b}", reset_less=True)
                m.d.sync += [t.eq(got.tap), q.eq(got.q), ok.eq(got.ok)]
                out.append((t, q, ok))
            return out

        rows, cols = axis(y, tok.ky, ty, uh, "y"), axis(x, tok.kx, tx, uw, "x")
        go_a, end_a = Signal(name="go_a"), Signal(name="end_a")
        word_a = Signal.like(tok.word[0], name="word_a", reset_less=True)
        sign_a = Signal(name="sign_a", reset_less=True)
        mag_a = Signal.like(ev.magnitude, name="magnitude_a", reset_less=True)
        m.d.sync += [go_a.eq(go), end_a.eq(self.tokens.valid & tok.end), word_a.eq(tok.word[0]),
                     sign_a.eq(ev.sign), mag_a.eq(ev.magnitude)]
        # stage A -> 1, per bank: its codes (the tile's row, then its column, by the event's
        # position), each lane's gated term, the address of its output
        word_bits = 2 * lanes
        tile_rows = [word_a[word_bits * tx * r:word_bits * tx * (r + 1)] for r in range(ty)]
        lane_terms = data.ArrayLayout(signed(len(ev.magnitude) + 1), lanes)
        stage = []  # per bank: (addr1, update1, terms1)
        for by, (t_y, q_y, ok_y) in enumerate(rows):
            row = Array(tile_rows)[t_y] if ty > 1 else tile_rows[0]
            chunks = [row[word_bits * c:word_bits * (c + 1)] for c in range(tx)]
            for bx, (t_x, q_x, ok_x) in enumerate(cols):
                i = by * tx + bx
                codes = data.View(data.ArrayLayout(TernaryCode, lanes),
                                  Array(chunks)[t_x] if tx > 1 else chunks[0])
                inside = go_a & ok_y & ok_x
                a1 = Signal(range(depth), name=f"addr1_{i}", reset_less=True)
                v1 = Signal(name=f"update1_{i}")
                terms1 = Signal(lane_terms, name=f"terms1_{i}", reset_less=True)
                m.d.sync += [a1.eq(address(q_y, q_x)), v1.eq(inside)]
                for j in range(lanes):
                    code = codes[j]
                    gate = PEArray.gate(inside, end_a, code)
                    step = Mux(PEArray.agree(code.sign, sign_a), mag_a, -mag_a)
                    m.d.sync += terms1[j].eq(Mux(gate, step, 0))
                stage.append((a1, v1, terms1))
        e1 = Signal(name="end1")
        m.d.sync += e1.eq(end_a)
        # the group's fields, from its END token
        fields = ("taddr", "size", "image_end", "buffer")
        group = {name: Signal.like(getattr(self.sums.payload, name), name=f"group_{name}")
                 for name in fields}
        gbase = Signal.like(self.sums.payload.nbase, name="group_base")
        # (taken a cycle after the END arrives, with the rest of stage A: the next group's
        # END may come as soon as the sums of this one have left)
        fields_a = {name: Signal.like(getattr(tok, name), name=f"{name}_a", reset_less=True)
                    for name in (*fields, "nbase")}
        m.d.sync += [fields_a[name].eq(getattr(tok, name)) for name in fields_a]
        with m.If(end_a):
            m.d.sync += [group[name].eq(fields_a[name]) for name in fields]
            m.d.sync += gbase.eq(fields_a["nbase"] * self._stride)
        e2 = Signal(name="end2")
        m.d.sync += e2.eq(e1)

        # the drain: pooled position (py, px), window tap (dy, dx), cycle w of the position;
        # the accumulator read: output row and column, their bank and word
        per = self.per_position(s, lanes, self._rate)
        draining = Signal()
        py, px = Signal(range(max(s.pooled_height, 2))), Signal(range(max(s.pooled_width, 2)))
        dy, dx = Signal(range(max(pool, 2))), Signal(range(max(pool, 2)))
        w = Signal(range(max(per, 2)))
        top = Signal(range(max(uh, 2)))  # the window's first row: py * pool
        row = Signal(range(max(uh, 2)))  # the read's row: top + dy
        left = Signal(range(max(uw, 2)))  # the window's first column: px * pool
        col = Signal(range(max(uw, 2)))  # the read's column: left + dx
        pos = Signal.like(self.sums.payload.nbase)  # py * row_step + px
        reading = draining & (w < pool * pool)
        rq, rm = divmod_const(row, ty)
        cq, cm = divmod_const(col, tx)
        with m.If(e2):
            m.d.sync += [draining.eq(1), py.eq(0), px.eq(0), dy.eq(0), dx.eq(0), w.eq(0),
                         top.eq(0), row.eq(0), left.eq(0), col.eq(0), pos.eq(0)]
        with m.Elif(draining):
            m.d.sync += w.eq(w + 1)
            with m.If(reading):
                with m.If(dx == pool - 1):
                    m.d.sync += [dx.eq(0), dy.eq(dy + 1), row.eq(row + 1), col.eq(left)]
                with m.Else():
                    m.d.sync += [dx.eq(dx + 1), col.eq(col + 1)]
            with m.If(w == per - 1):
                m.d.sync += [w.eq(0), dx.eq(0), dy.eq(0)]
                with m.If(px == s.pooled_width - 1):
                    m.d.sync += [px.eq(0), py.eq(py + 1), left.eq(0), col.eq(0),
                                 top.eq(top + pool), row.eq(top + pool),
                                 pos.eq(pos + self._row_step - (s.pooled_width - 1))]
                    with m.If(py == s.pooled_height - 1):
                        m.d.sync += draining.eq(0)
                with m.Else():
                    m.d.sync += [px.eq(px + 1), left.eq(left + pool), col.eq(left + pool),
                                 row.eq(top), pos.eq(pos + 1)]
        # the read's address, bank and place in the window, registered (the row's quotient
        # times the words of a row, into every bank's address, was the paper CNN's critical
        # path at 64.2 MHz): d, the read a cycle after the counters; r, its answer (the
        # position cleared); q, the answer registered; p, the read's bank chosen, into the
        # maximum
        read = data.StructLayout({"valid": 1, "first": 1, "last": 1, "addr": range(depth),
                                  "bank": range(max(ty * tx, 2)), "end": 1,
                                  "pos": pos.shape()})
        d, r, q, p = (Signal(read, name=f"{n}_read") for n in "drqp")
        m.d.sync += [d.valid.eq(reading), d.first.eq(reading & (w == 0)),
                     d.last.eq(reading & (w == pool * pool - 1)), d.addr.eq(address(rq, cq)),
                     d.bank.eq(rm * tx + cm),
                     d.end.eq((py == s.pooled_height - 1) & (px == s.pooled_width - 1)),
                     d.pos.eq(pos), r.eq(d), q.eq(r), p.eq(q)]

        # per bank, stage 1 -> 2: the read of the position; 2 -> 3: its answer registered
        # (block RAM outputs only feed registers: the answer into the adder, or into the
        # pooling comparators, was the ECP5's critical path at 61.9 MHz); 3: add and write
        # back
        answers, busy = [], [go_a, end_a, e1, e2, draining, d.valid, r.valid]
        for b, ((rd, wr), (a1, v1, terms1)) in enumerate(zip(banks, stage, strict=True)):
            a2, v2 = Signal.like(a1, name=f"addr2_{b}"), Signal(name=f"update2_{b}")
            terms2 = Signal.like(terms1, name=f"terms2_{b}")
            m.d.sync += [a2.eq(a1), v2.eq(v1), terms2.eq(terms1)]
            a3, v3 = Signal.like(a1, name=f"addr3_{b}"), Signal(name=f"update3_{b}")
            terms3 = Signal.like(terms1, name=f"terms3_{b}")
            d3 = Signal(word, name=f"read3_{b}", reset_less=True)
            m.d.sync += [a3.eq(a2), v3.eq(v2), terms3.eq(terms2), d3.eq(rd.data)]
            # the token one ahead wrote its position after this one's read: forward its sums
            a4, v4 = Signal.like(a1, name=f"addr4_{b}"), Signal(name=f"update4_{b}")
            total = Signal(word, name=f"updated{b}")
            last_total = Signal(word, name=f"written{b}", reset_less=True)
            m.d.sync += [a4.eq(a3), v4.eq(v3), last_total.eq(total)]
            base = data.View(word, Mux(v4 & (a4 == a3), last_total.as_value(),
                                       d3.as_value()))
            for j in range(lanes):
                m.d.comb += total[j].eq(base[j] + terms3[j])
            clear = r.valid & (r.bank == b)
            m.d.comb += [rd.addr.eq(Mux(d.valid, d.addr, a1)),
                         wr.addr.eq(Mux(clear, r.addr, a3)),
                         wr.data.eq(Mux(clear, 0, total)),
                         wr.en.eq(clear | v3)]
            answers.append(d3)
            busy += [v1, v2, v3]

        # the answer of the read's bank, registered (the banks' multiplexer in front of the
        # pooling comparators was the paper CNN's critical path at 57.6 MHz with 25 banks)
        chosen = Signal(word, name="chosen")
        m.d.sync += chosen.eq(Array(answers)[q.bank] if len(answers) > 1 else answers[0])
        best = Signal(word, name="best")
        with m.If(p.valid):
            for j in range(lanes):
                with m.If(p.first | (chosen[j] > best[j])):
                    m.d.sync += best[j].eq(chosen[j])
        # the sums of a position: the cycle after its last answer is in the maximum
        out = self.sums.payload
        m.d.sync += [self.sums.valid.eq(p.last), out.nbase.eq(gbase + p.pos),
                     out.image_end.eq(group["image_end"] & p.end), out.last.eq(0)]
        m.d.sync += [getattr(out, name).eq(group[name])
                     for name in ("taddr", "size", "buffer")]
        m.d.comb += [out.acc.eq(best),
                     self.busy.eq(Cat(*busy, q.valid, p.valid, self.sums.valid).any())]
        return m
