# amaranth: UnusedElaboratable=no
"""Event lists: appended compacted, replayed one per cycle, `latency` cycles behind the token."""

from gxnor.hw.events import EventLists


def test_lists_append_clear_and_replay(simulate, small_event, small_token):
    dut = EventLists(16, small_event, small_token())
    pixels = [(3, 200, 0), (7, 1, 0), (9, 255, 0)]
    outputs = [(1, 1, 1), (2, 1, 0)]
    got = []

    async def bench(ctx):
        for index, mag, sign in pixels:  # the image's nonzero pixels: list 0
            ctx.set(dut.pixels.payload, {"index": index, "magnitude": mag, "sign": sign})
            ctx.set(dut.pixels.valid, 1)
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.src, 0)  # layer 0 reads list 0, writes list 1
        for index, mag, sign in outputs:
            ctx.set(dut.feedback.payload, {"index": index, "magnitude": mag, "sign": sign})
            ctx.set(dut.feedback.valid, 1)
            await ctx.tick()
        ctx.set(dut.feedback.valid, 0)
        assert [int(c) for c in ctx.get(dut.count)] == [3, 2]
        # replay list 0 then list 1, an END token between; each comes out 2 cycles later
        reads = [(0, p, 0) for p in range(3)] + [(0, 0, 1)] + [(1, p, 0) for p in range(2)]
        for cycle in range(len(reads) + EventLists.latency):
            if cycle < len(reads):
                src, pos, end = reads[cycle]
                ctx.set(dut.tokens.payload, {"src": src, "pos": pos, "end": end,
                                             "nbase": cycle})
                ctx.set(dut.tokens.valid, 1)
            else:
                ctx.set(dut.tokens.valid, 0)
            assert ctx.get(dut.busy) == (cycle > 0)
            if ctx.get(dut.out.valid):
                out = ctx.get(dut.out.payload)
                got.append((cycle - out.nbase, out.end,
                            (out.event.index, out.event.magnitude, out.event.sign)))
            await ctx.tick()
        ctx.set(dut.clear, 0b11)
        await ctx.tick()
        assert [int(c) for c in ctx.get(dut.count)] == [0, 0]

    simulate(dut, bench)
    latency = EventLists.latency
    assert [g[0] for g in got] == [latency] * 6
    assert [g[2] for g in got if not g[1]] == pixels + outputs
    assert [g[1] for g in got] == [0, 0, 0, 1, 0, 0]
