# amaranth: UnusedElaboratable=no
"""Event lists: appended compacted (up to `ports` per cycle), replayed `ports` per cycle,
`latency` cycles behind the token, for 1, 2 and 4 banks; the layer pipeline's lists whose
banks are pieces of one block RAM each (here pieces of a few words, so that lists of 16 are
several pieces)."""

import pytest

from gxnor.hw.events import EventLists, PieceEventLists


class TinyPieces(PieceEventLists):
    PIECE_BITS = 18 * 3  # pieces of 3 words (a last piece of fewer)


@pytest.mark.parametrize("lists", [EventLists, PieceEventLists, TinyPieces])
@pytest.mark.parametrize("ports", [1, 2, 4])
def test_lists_append_clear_and_replay(simulate, small_event, small_token, ports, lists):
    dut = lists([16, 8, 16, 8], small_event, small_token(ports=ports), ports)
    pixels = [(3, 200, 0), (7, 1, 0), (9, 255, 0), (10, 4, 0), (12, 9, 0)]
    outputs = [(1, 1, 1), (2, 1, 0), (5, 1, 1)]
    sizes = [1, ports, 0, ports, ports, 1, ports]  # bundles of these sizes, any alignment
    got = []

    async def write(ctx, port, events):
        k = 0
        for size in sizes:
            chunk = events[k:k + min(size, ports)]
            k += len(chunk)
            ctx.set(port.payload, {"n": len(chunk), "events": [
                {"index": i, "magnitude": mag, "sign": s} for i, mag, s in chunk]
                + [{}] * (ports - len(chunk))})
            ctx.set(port.valid, 1)
            await ctx.tick()
            if k == len(events):
                break
        ctx.set(port.valid, 0)

    async def bench(ctx):
        ctx.set(dut.pixel_list, 0)  # the image's nonzero pixels: list 0
        await write(ctx, dut.pixels, pixels)
        ctx.set(dut.dst, 2)  # a layer's outputs: list 2
        await write(ctx, dut.feedback, outputs)
        assert [int(c) for c in ctx.get(dut.count)] == [len(pixels), 0, len(outputs), 0]
        # replay list 0 then list 1, an END token between; each comes out 2 cycles later
        b0, b1 = -(-len(pixels) // ports), -(-len(outputs) // ports)
        reads = [(0, p, 0) for p in range(b0)] + [(0, 0, 1)] + [(2, p, 0) for p in range(b1)]
        for cycle in range(len(reads) + lists.latency):
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
                            [(e.index, e.magnitude, e.sign) for e in out.event]))
            await ctx.tick()
        ctx.set(dut.clear, 0b1111)
        await ctx.tick()
        assert [int(c) for c in ctx.get(dut.count)] == [0, 0, 0, 0]

    simulate(dut, bench)
    b0, b1 = -(-len(pixels) // ports), -(-len(outputs) // ports)
    assert [g[0] for g in got] == [lists.latency] * len(got)
    assert [g[1] for g in got] == [0] * b0 + [1] + [0] * b1
    bundles = [g[2] for g in got if not g[1]]
    listed0 = [e for b in bundles[:b0] for e in b][:len(pixels)]
    listed1 = [e for b in bundles[b0:] for e in b][:len(outputs)]
    assert listed0 == pixels and listed1 == outputs


def test_pixels_and_outputs_in_the_same_cycle(simulate, small_event, small_token):
    """The next image's pixels go into an input list while a layer writes a hidden list."""
    dut = EventLists([8, 8, 8, 8], small_event, small_token())

    async def bench(ctx):
        ctx.set(dut.pixel_list, 1)
        ctx.set(dut.dst, 3)
        for k in range(3):
            ctx.set(dut.pixels.payload, {"n": 1, "events": [{"index": k, "magnitude": 9}]})
            ctx.set(dut.feedback.payload, {"n": 1, "events": [{"index": 7 - k, "sign": 1}]})
            ctx.set(dut.pixels.valid, 1)
            ctx.set(dut.feedback.valid, 1)
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.feedback.valid, 0)
        assert [int(c) for c in ctx.get(dut.count)] == [0, 3, 0, 3]

    simulate(dut, bench)


@pytest.mark.parametrize("ports, banks", [(1, 2), (1, 4), (2, 8)])
def test_more_banks_than_ports(simulate, small_event, small_token, ports, banks):
    """Writes of up to ``banks`` events a cycle, reads of ``ports``: the same list."""
    dut = EventLists([16, 16], small_event, small_token(ports=ports), ports, banks)
    events = [(i, (7 * i) % 256, i % 2) for i in range(13)]
    sizes = [3, banks, 1, 0, banks, 2, banks]
    got = []

    async def bench(ctx):
        ctx.set(dut.pixel_list, 1)
        k, step = 0, 0
        while k < len(events):
            size = sizes[step % len(sizes)]
            step += 1
            chunk = events[k:k + min(size, banks)]
            k += len(chunk)
            ctx.set(dut.pixels.payload, {"n": len(chunk), "events": [
                {"index": i, "magnitude": mag, "sign": s} for i, mag, s in chunk]
                + [{}] * (banks - len(chunk))})
            ctx.set(dut.pixels.valid, 1)
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        assert [int(c) for c in ctx.get(dut.count)] == [0, len(events)]
        n_bundles = -(-len(events) // ports)
        for cycle in range(n_bundles + EventLists.latency):
            ctx.set(dut.tokens.valid, cycle < n_bundles)
            ctx.set(dut.tokens.payload, {"src": 1, "pos": cycle})
            if ctx.get(dut.out.valid):
                got.extend((e.index, e.magnitude, e.sign) for e in ctx.get(dut.out.payload).event)
            await ctx.tick()

    simulate(dut, bench)
    assert got[:len(events)] == events
