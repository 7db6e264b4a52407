# amaranth: UnusedElaboratable=no
"""The weight fetch: the word at base + index, `latency` cycles behind the token, from a ROM,
a memory loaded through `weights_in`, or an external memory."""

import pytest

from gxnor.hw.fetch import WeightFetch

WORDS = [(7 * a + 3) % 256 for a in range(64)]
READS = [(0, 5), (16, 0), (16, 15), (48, 2), (32, 9)]  # (base, index)


def _replay(dut, ctx_tokens):
    async def bench(ctx):
        got = []
        for cycle in range(len(ctx_tokens) + WeightFetch.latency):
            if cycle < len(ctx_tokens):
                base, index = ctx_tokens[cycle]
                ctx.set(dut.tokens.payload, {"base": base, "event": [{"index": index}],
                                             "nbase": cycle})
                ctx.set(dut.tokens.valid, 1)
            else:
                ctx.set(dut.tokens.valid, 0)
            if ctx.get(dut.out.valid):
                out = ctx.get(dut.out.payload)
                got.append((cycle - out.nbase, out.word[0]))
            await ctx.tick()
        return got

    return bench


def test_rom(simulate, small_token):
    dut = WeightFetch(64, 8, small_token(), "rom", WORDS)
    got = []

    async def bench(ctx):
        got.extend(await _replay(dut, READS)(ctx))

    simulate(dut, bench)
    assert got == [(WeightFetch.latency, WORDS[b + i]) for b, i in READS]


def test_loadable_memory_starts_empty(simulate, small_token):
    dut = WeightFetch(64, 8, small_token(), "loadable")
    got = []

    async def bench(ctx):
        before = await _replay(dut, READS[:1])(ctx)
        assert before == [(WeightFetch.latency, 0)]  # nothing loaded yet (SPRAM semantics)
        for addr, word in enumerate(WORDS):
            ctx.set(dut.weights_in.payload, {"addr": addr, "data": word})
            ctx.set(dut.weights_in.valid, 1)
            await ctx.tick().until(dut.weights_in.ready)
        ctx.set(dut.weights_in.valid, 0)
        got.extend(await _replay(dut, READS)(ctx))

    simulate(dut, bench)
    assert got == [(WeightFetch.latency, WORDS[b + i]) for b, i in READS]


def test_external_memory(simulate, small_token):
    dut = WeightFetch(64, 8, small_token(), "external")
    got = []

    async def memory(ctx):  # a synchronous memory outside
        async for _, _, addr in ctx.tick().sample(dut.weight_addr):
            ctx.set(dut.weight_data, WORDS[addr[0]])

    async def bench(ctx):
        got.extend(await _replay(dut, READS)(ctx))

    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(memory)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(WeightFetch.latency, WORDS[b + i]) for b, i in READS]


def test_bad_memory_kind(small_token):
    with pytest.raises(ValueError, match=r"memory must be one of"):
        WeightFetch(4, 8, small_token(), "flash")


def test_several_ports_read_several_words(simulate, small_token):
    dut = WeightFetch(64, 8, small_token(ports=4), "rom", WORDS, ports=4)
    got = []

    async def bench(ctx):
        for cycle in range(len(READS) + WeightFetch.latency):
            if cycle < len(READS):
                base, index = READS[cycle]
                ctx.set(dut.tokens.payload, {"base": base, "nbase": cycle, "event": [
                    {"index": (index + t) % 16} for t in range(4)]})
                ctx.set(dut.tokens.valid, 1)
            else:
                ctx.set(dut.tokens.valid, 0)
            if ctx.get(dut.out.valid):
                out = ctx.get(dut.out.payload)
                got.append([int(w) for w in out.word])
            await ctx.tick()

    simulate(dut, bench)
    assert got == [[WORDS[b + (i + t) % 16] for t in range(4)] for b, i in READS]
