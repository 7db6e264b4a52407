"""Event lists: the compacted inputs of a layer, replayed one event per cycle."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out


class EventLists(wiring.Component):
    """Two event lists, used ping-pong: a layer reads list ``src`` while its nonzero outputs are
    appended to the other one; the image's nonzero pixels (the first layer's input) go to
    list 0. Events are compacted as they are written, so replaying a list gives one event per
    cycle with no bubbles: a zero activation costs no cycle at all.

    Parameters
    ----------
    depth: entries of each list (the widest layer input).
    event: the event layout (:func:`gxnor.hw.layouts.event_layout`).
    token: the token layout (:func:`gxnor.hw.layouts.token_layout`); its ``event`` field
        has the layout ``event``.

    Members
    -------
    pixels: In(stream(event)) — appends to list 0; always ready.
    feedback: In(stream(event)) — appends to list ``not src``; always ready. The two writers
        are never active in the same cycle (pixels arrive between images).
    src: In(1) — the list the current layer reads.
    clear: In(2) — per list: empty it this cycle.
    count: Out(2 x count) — the entries of each list.
    tokens: In(stream(token)) — read the event at ``token.pos`` of list ``token.src`` (END
        tokens pass through without one); always ready.
    out: Out(stream(token)) — the token with its event, ``latency`` cycles later.
    busy: Out(1) — a token is in flight.

    Timing: latency 2 (the block RAM read, then a register: block RAM outputs only feed
    registers, for timing); one token per cycle.
    """

    latency = 2

    def __init__(self, depth: int, event: data.Layout, token: data.Layout):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth!r}")
        self._depth, self._event = depth, event
        count = range(depth + 1)
        super().__init__({
            "pixels": In(stream.Signature(event, always_ready=True)),
            "feedback": In(stream.Signature(event, always_ready=True)),
            "src": In(1),
            "clear": In(2),
            "count": Out(data.ArrayLayout(count, 2)),
            "tokens": In(stream.Signature(token, always_ready=True)),
            "out": Out(stream.Signature(token, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        reads, writes = [], []
        for b in range(2):
            m.submodules[f"list{b}"] = mem = memory.Memory(shape=self._event, depth=self._depth,
                                                           init=[])
            reads.append(mem.read_port())
            writes.append(mem.write_port())

        # write: append at the list's count (pixels to list 0, outputs to the other list)
        for b, wr in enumerate(writes):
            from_pixels = self.pixels.valid if b == 0 else 0
            from_layer = self.feedback.valid & (self.src != b)
            m.d.comb += [
                wr.addr.eq(self.count[b]),
                wr.data.eq(Mux(from_pixels, self.pixels.payload, self.feedback.payload)),
                wr.en.eq(from_pixels | from_layer),
            ]
            with m.If(self.clear[b]):
                m.d.sync += self.count[b].eq(0)
            with m.Elif(wr.en):
                m.d.sync += self.count[b].eq(self.count[b] + 1)

        # read: the token's address goes to both lists; the answer is registered with the token
        p1 = Signal.like(self.tokens.payload)
        p1_valid = Signal()
        for rd in reads:
            m.d.comb += rd.addr.eq(self.tokens.payload.pos)
        m.d.sync += [p1.eq(self.tokens.payload), p1_valid.eq(self.tokens.valid)]
        m.d.sync += [self.out.payload.eq(p1), self.out.valid.eq(p1_valid),
                     self.out.payload.event.eq(Mux(p1.src, reads[1].data, reads[0].data))]
        m.d.comb += self.busy.eq(p1_valid | self.out.valid)
        return m
