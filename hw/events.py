"""Event lists: the compacted inputs of a layer, replayed ``ports`` events per cycle."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import bundle_layout


class EventLists(wiring.Component):
    """Two event lists, used ping-pong: a layer reads list ``src`` while its nonzero outputs are
    appended to the other one; the image's nonzero pixels (the first layer's input) go to
    list 0. Events are compacted as they are written, so replaying a list gives ``ports``
    events per cycle with no bubbles: a zero activation costs no cycle at all.

    Each list is ``ports`` banks: position p lives in bank p mod ports, so the ``ports`` events
    of a bundle (positions b*ports ...) are read in one cycle, and up to ``ports`` contiguous
    appends are written in one.

    Parameters
    ----------
    depth: entries of each list (the widest layer input).
    event: the event layout (:func:`gxnor.hw.layouts.event_layout`).
    token: the token layout (:func:`gxnor.hw.layouts.token_layout`) for ``ports``.
    ports: k, a power of two.

    Members
    -------
    pixels: In(stream(bundle)) — appends ``n`` events to list 0; always ready.
    feedback: In(stream(bundle)) — appends to list ``not src``; always ready. The two writers
        are never active in the same cycle (pixels arrive between images).
    src: In(1) — the list the current layer reads.
    clear: In(2) — per list: empty it this cycle.
    count: Out(2 x count) — the entries of each list.
    tokens: In(stream(token)) — read bundle ``token.pos`` of list ``token.src`` (END tokens pass
        through without events); always ready.
    out: Out(stream(token)) — the token with its events, ``latency`` cycles later.
    busy: Out(1) — a token is in flight.

    Timing: latency 2 (the block RAM read, then a register: block RAM outputs only feed
    registers, for timing); one token per cycle.
    """

    latency = 2

    def __init__(self, depth: int, event: data.Layout, token: data.Layout, ports: int = 1):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth!r}")
        if ports < 1 or ports & (ports - 1):
            raise ValueError(f"ports must be a power of two, got {ports!r}")
        self._depth, self._event, self._ports = depth, event, ports
        bundle = bundle_layout(event, ports)
        super().__init__({
            "pixels": In(stream.Signature(bundle, always_ready=True)),
            "feedback": In(stream.Signature(bundle, always_ready=True)),
            "src": In(1),
            "clear": In(2),
            "count": Out(data.ArrayLayout(range(depth + 1), 2)),
            "tokens": In(stream.Signature(token, always_ready=True)),
            "out": Out(stream.Signature(token, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        k = self._ports
        shift = k.bit_length() - 1
        bank_depth = max(-(-self._depth // k), 1)
        reads = [[], []]  # [list][bank]
        for b in range(2):
            from_pixels = self.pixels.valid if b == 0 else 0
            from_layer = self.feedback.valid & (self.src != b)
            bundle = data.View(bundle_layout(self._event, k),
                               Mux(from_pixels, self.pixels.payload.as_value(),
                                   self.feedback.payload.as_value()))
            writing = from_pixels | from_layer
            count = self.count[b]
            low = count[:shift] if shift else 0
            for j in range(k):
                m.submodules[f"list{b}_bank{j}"] = mem = memory.Memory(
                    shape=self._event, depth=bank_depth, init=[])
                wr, rd = mem.write_port(), mem.read_port()
                reads[b].append(rd)
                # position count + s lands in bank (count + s) mod k: slot s = (j - count) mod k
                slot = (j - low)[:shift] if shift else 0
                m.d.comb += [
                    wr.addr.eq((count >> shift) + (j < low if shift else 0)),
                    wr.data.eq(bundle.events[slot] if shift else bundle.events[0]),
                    wr.en.eq(writing & (bundle.n > slot)),
                ]
            with m.If(self.clear[b]):
                m.d.sync += count.eq(0)
            with m.Elif(writing):
                m.d.sync += count.eq(count + bundle.n)

        # read: the bundle's address goes to every bank; the answers are registered with it
        p1 = Signal.like(self.tokens.payload)
        p1_valid = Signal()
        for rd in reads[0] + reads[1]:
            m.d.comb += rd.addr.eq(self.tokens.payload.pos)
        m.d.sync += [p1.eq(self.tokens.payload), p1_valid.eq(self.tokens.valid)]
        m.d.sync += [self.out.payload.eq(p1), self.out.valid.eq(p1_valid)]
        for j in range(k):
            m.d.sync += self.out.payload.event[j].eq(Mux(p1.src, reads[1][j].data,
                                                         reads[0][j].data))
        m.d.comb += self.busy.eq(p1_valid | self.out.valid)
        return m
