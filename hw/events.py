"""Event lists: the compacted inputs of a layer, replayed ``ports`` events per cycle."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .fetch import BLOCK_SHAPES
from .layouts import bundle_layout


class EventLists(wiring.Component):
    """Event lists, each written by appending and read back in order. Events are compacted as
    they are written, so replaying a list gives ``ports`` events per cycle with no bubbles: a
    zero activation costs no cycle at all.

    The shared engine uses four: lists 0 and 1 take the nonzero pixels of alternate images
    (the next image arrives while the engine works on this one), lists 2 and 3 the outputs of
    alternate layers (a layer reads one while it appends to the other).

    Each list is ``banks`` banks (a multiple of ``ports``): position p lives in bank p mod
    banks, so the ``ports`` events of a bundle (positions b*ports ...) are read in one cycle,
    and up to ``banks`` contiguous appends are written in one (a writer that delivers more
    events per cycle than the engine reads, e.g. an input stage taking 16 pixels a cycle).

    Parameters
    ----------
    depths: entries of each list.
    event: the event layout (:func:`gxnor.hw.layouts.event_layout`).
    token: the token layout (:func:`gxnor.hw.layouts.token_layout`) for ``ports``.
    ports: k, the events a token reads, a power of two.
    banks: the events a write may append, a power of two, a multiple of ``ports`` (default:
        ``ports``).
    slices: S, the events of the sliced last layer's tokens (``token.last``; one port): the
        lists it reads (``wide``) are kept in S copies, and copy t reads the token's event t
        (position S * pos + t) while copy 0 serves the other tokens (the shared engine's sliced
        last layer: :attr:`gxnor.hw.spec.AcceleratorSpec.slices`). Copies, not banks: they
        are written alike, and no read needs a choice between banks.
    wide: the lists the sliced layer reads.
    list_banks: the banks of each list, if fewer than ``banks`` for some (powers of two from
        ``ports``): the shared engine's input lists take one pixel a cycle, so they need not
        have the banks the serializer's rate asks of the hidden lists.

    Members
    -------
    pixels: In(stream(bundle of banks)) — appends ``n`` events to list ``pixel_list``; always
        ready.
    pixel_list: In — the list the pixels go to.
    feedback: In(stream(bundle)) — appends to list ``dst``; always ready. The two writers may
        write in the same cycle, to different lists.
    dst: In — the list the feedback goes to.
    clear: In(lists) — per list: empty it this cycle (an append in the same cycle goes to
        position 0: the list then holds just that).
    count: Out(lists x count) — the entries of each list.
    tokens: In(stream(token)) — read bundle ``token.pos`` of list ``token.src`` (END tokens pass
        through without events); always ready.
    out: Out(stream(token)) — the token with its events, ``latency`` cycles later.
    busy: Out(1) — a token is in flight.

    Timing: latency 2 (the block RAM read, then a register: block RAM outputs only feed
    registers, for timing); one token per cycle.
    """

    latency = 2

    def __init__(self, depths: list[int], event: data.Layout, token: data.Layout,
                 ports: int = 1, banks: int | None = None, slices: int = 1,
                 wide: tuple[int, ...] = (), list_banks: list[int] | None = None):
        banks = ports if banks is None else banks
        if slices > 1 and (slices & (slices - 1) or ports != 1 or not wide):
            raise ValueError(f"slices ({slices}) must be a power of two, with one port and the "
                             "lists the sliced layer reads (wide)")
        if not depths or min(depths) < 1:
            raise ValueError(f"depths must be >= 1, got {depths!r}")
        for name, v in (("ports", ports), ("banks", banks)):
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v!r}")
        if banks < ports:
            raise ValueError(f"banks ({banks}) must be a multiple of ports ({ports})")
        self._depths, self._event, self._ports, self._banks = list(depths), event, ports, banks
        self._slices, self._wide = slices, tuple(wide) if slices > 1 else ()
        self._list_banks = [banks] * len(depths) if list_banks is None else list(list_banks)
        if len(self._list_banks) != len(depths) or any(
                b < ports or banks % b or b & (b - 1) for b in self._list_banks):
            raise ValueError(f"list_banks {list_banks!r}: one per list, powers of two from "
                             f"ports ({ports}) to banks ({banks})")
        bundle = bundle_layout(event, banks)
        n = len(depths)
        super().__init__({
            "pixels": In(stream.Signature(bundle, always_ready=True)),
            "pixel_list": In(range(n)),
            "feedback": In(stream.Signature(bundle, always_ready=True)),
            "dst": In(range(n)),
            "clear": In(n),
            "count": Out(data.ArrayLayout(range(max(depths) + 1), n)),
            "tokens": In(stream.Signature(token, always_ready=True)),
            "out": Out(stream.Signature(token, always_ready=True)),
            "busy": Out(1),
        })

    @property
    def lists(self) -> int:
        return len(self._depths)

    def elaborate(self, platform):
        m = Module()
        k = self._ports
        reads = []  # [list][bank]
        for b, depth in enumerate(self._depths):
            nb = self._list_banks[b]
            bshift = nb.bit_length() - 1
            from_pixels = self.pixels.valid & (self.pixel_list == b)
            from_layer = self.feedback.valid & (self.dst == b)
            bundle = data.View(bundle_layout(self._event, self._banks),
                               Mux(from_pixels, self.pixels.payload.as_value(),
                                   self.feedback.payload.as_value()))
            writing = from_pixels | from_layer
            # a list cleared and appended to in the same cycle starts at position 0
            count = Mux(self.clear[b], 0, self.count[b])
            low = count[:bshift] if bshift else 0
            copies = []  # [copy][bank]
            for c in range(self._slices if b in self._wide else 1):
                banks = []
                for j in range(nb):
                    # position count + s lands in bank (count + s) mod nb: slot s =
                    # (j - count) mod nb
                    slot = (j - low)[:bshift] if bshift else 0
                    banks.append(self.bank(
                        m, f"list{b}_bank{j}" + (f"_copy{c}" if c else ""),
                        max(-(-depth // nb), 1), (count >> bshift) + (j < low if bshift else 0),
                        bundle.events[slot] if bshift else bundle.events[0],
                        writing & (bundle.n > slot)))
                copies.append(banks)
            reads.append(copies)
            with m.If(writing):
                m.d.sync += self.count[b].eq(count + bundle.n)
            with m.Elif(self.clear[b]):
                m.d.sync += self.count[b].eq(0)

        # read: bundle p is positions p*k .. p*k+k-1: banks (p mod R)*k + t (R = banks / k),
        # all at address p div R; the answers are registered with the token. A sliced
        # last layer's token (``last``, one port) reads position S*p + t from copy t
        S = self._slices
        pos = self.tokens.payload.pos
        p1 = Signal.like(self.tokens.payload)
        p1_valid = Signal()
        for b, copies in enumerate(reads):
            rshift = (self._list_banks[b] // k).bit_length() - 1
            for c, banks in enumerate(copies):
                addr = pos >> rshift
                if b in self._wide:  # (one port) copy c: position S*p + c
                    addr = Mux(self.tokens.payload.last, (pos * S + c) >> rshift,
                               addr if c == 0 else 0)
                for read in banks:
                    m.d.comb += read.addr.eq(addr)
        m.d.sync += [p1.eq(self.tokens.payload), p1_valid.eq(self.tokens.valid)]
        token, valid, busy = p1, p1_valid, [p1_valid]
        for _ in range(self.latency - 2):  # the pieces' answers registered (a stage each)
            later, later_valid = Signal.like(token), Signal()
            m.d.sync += [later.eq(token), later_valid.eq(valid)]
            token, valid = later, later_valid
            busy.append(valid)
        m.d.sync += [self.out.payload.eq(token), self.out.valid.eq(valid)]

        def event(b, c, t, position):  # slot t of a bundle of k events, from copy c of list b
            ratio = self._list_banks[b] // k
            rshift = ratio.bit_length() - 1
            row = position[:rshift] if ratio > 1 else 0
            return (Array(reads[b][c][r * k + t].data for r in range(ratio))[row]
                    if ratio > 1 else reads[b][c][t].data)

        for t in range(max(k, S)):
            with m.Switch(token.src):
                for b in range(len(self._depths)):
                    with m.Case(b):
                        narrow = event(b, 0, t, token.pos) if t < k else 0
                        if b in self._wide:
                            wide = event(b, t, 0, token.pos * S + t)
                            m.d.sync += self.out.payload.event[t].eq(
                                Mux(token.last, wide, narrow))
                        else:
                            m.d.sync += self.out.payload.event[t].eq(narrow)
        m.d.comb += self.busy.eq(Cat(*busy, self.out.valid).any())
        return m

    def bank(self, m: Module, name: str, depth: int, waddr, wdata, wen):
        """One bank of a list: a memory of ``depth`` events written at ``waddr`` (``wdata``
        when ``wen``); returns its read (``addr`` to drive, ``data`` a cycle later)."""
        m.submodules[name] = mem = memory.Memory(shape=self._event, depth=depth, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(waddr), wr.data.eq(wdata), wr.en.eq(wen)]
        return mem.read_port()


class _Read:
    """A read of a bank made of pieces: ``addr`` in, ``data`` (registered answers, chosen by
    the address's piece) out."""

    def __init__(self, addr, data):
        self.addr, self.data = addr, data


class PieceEventLists(EventLists):
    """:class:`EventLists` whose banks deeper than one block RAM are pieces of one block RAM
    each (:attr:`PIECE_BITS`: 1,024 words of up to 18 bits, 512 of up to 36: the ECP5's
    DP16KD), each piece's answer registered before the choice between pieces and lists. A
    memory deeper than one block is several blocks and a multiplexer on their outputs, and
    a block RAM's output is late (5.8 ns clock to output on the ECP5 -6, no output register
    in Yosys's mapping): the paper CNN's second layer's lists, three buffers of 4,608 events
    in 15 blocks, were its critical path (68.1 MHz at 75 asked). The layer pipeline's engines
    use these.

    Timing: latency 3 (the block RAM read, the answers registered, the choice registered);
    one token per cycle."""

    latency = 3
    #: bits of one block RAM (:data:`~gxnor.hw.fetch.BLOCK_SHAPES`: a piece is one block deep
    #: in its two widest shapes)
    PIECE_BITS = BLOCK_SHAPES[-1][0] * BLOCK_SHAPES[-1][1]

    def bank(self, m, name, depth, waddr, wdata, wen):
        width = self._event.size
        narrow, wide = (w for _, w in BLOCK_SHAPES[-2:])
        piece = self.PIECE_BITS // (narrow if width <= narrow else wide)
        if depth <= piece:
            read = super().bank(m, name, depth, waddr, wdata, wen)
            answer = Signal.like(read.data, name=f"{name}_answer")
            m.d.sync += answer.eq(read.data)
            return _Read(read.addr, answer)
        addr = Signal(range(depth), name=f"{name}_addr")
        which = Signal(range(-(-depth // piece)), name=f"{name}_piece")
        shift = piece.bit_length() - 1
        m.d.sync += which.eq(addr >> shift)
        answers = []
        for i in range(-(-depth // piece)):
            size = min(piece, depth - i * piece)
            read = super().bank(m, f"{name}_piece{i}", size, waddr[:shift],
                                wdata, wen & (waddr >> shift == i))
            answer = Signal.like(read.data, name=f"{name}_piece{i}_answer")
            m.d.comb += read.addr.eq(addr[:shift])
            m.d.sync += answer.eq(read.data)
            answers.append(answer)
        chosen = Signal.like(answers[0], name=f"{name}_answer")
        later = Signal.like(which, name=f"{name}_piece_later")
        m.d.sync += later.eq(which)
        m.d.comb += chosen.eq(Array(answers)[later])
        return _Read(addr, chosen)

