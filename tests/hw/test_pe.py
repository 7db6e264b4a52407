# amaranth: UnusedElaboratable=no
"""The PE array against the gated-XNOR rule (Amaranth simulator, async API)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gxnor.export import codes
from gxnor.hw.layouts import token_layout
from gxnor.hw.pe import PEArray

pytestmark = pytest.mark.sim


def _token(lanes):
    return token_layout(depth=8, words=8, neurons=lanes, thresholds=lanes, lanes=lanes,
                        index_bits=3, word_bits=2 * lanes)


def _run(dut, bench, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_pe_array_matches_reference(lanes):
    rng = np.random.default_rng(lanes)
    n_events = 40
    w = rng.integers(-1, 2, size=(n_events, lanes))
    w[:, 0] = 0  # an all-zero weight column: that lane must stay at 0
    mags = rng.integers(0, 256, n_events)
    signs = rng.integers(0, 2, n_events)
    x = mags * (1 - 2 * signs)
    expected = (w * x[:, None]).sum(0)
    token = _token(lanes)
    dut = PEArray(lanes, 16, token)
    word_codes = codes.encode(w, 1)
    seen = []

    async def bench(ctx):
        tok = dut.tokens.payload
        for e in range(n_events):
            ctx.set(dut.tokens.valid, 1)
            ctx.set(tok.end, 0)
            ctx.set(tok.n, 1)
            ctx.set(tok.event[0].magnitude, int(mags[e]))
            ctx.set(tok.event[0].sign, int(signs[e]))
            ctx.set(tok.word[0], int(sum(int(c) << (2 * j)
                                         for j, c in enumerate(word_codes[e]))))
            await ctx.tick()
            assert not ctx.get(dut.sums.valid)
        ctx.set(tok.end, 1)
        ctx.set(tok.size, lanes)
        assert not ctx.get(dut.sums.valid)
        await ctx.tick()
        ctx.set(dut.tokens.valid, 0)
        # the sums leave latency - 1 cycles after the END token
        assert PEArray.latency == 2 and ctx.get(dut.sums.valid)
        sums = ctx.get(dut.sums.payload)
        seen.extend(int(a) for a in sums.acc)
        assert sums.size == lanes
        await ctx.tick()
        assert not ctx.get(dut.sums.valid)
        # and the accumulators start again from zero
        ctx.set(tok.end, 1)
        ctx.set(dut.tokens.valid, 1)
        await ctx.tick()
        assert ctx.get(dut.sums.valid)
        assert all(int(a) == 0 for a in ctx.get(dut.sums.payload).acc)

    _run(dut, bench)
    assert seen == expected.tolist()
    assert seen[0] == 0


def test_pe_array_parameter_errors():
    with pytest.raises(ValueError, match=r"^lanes must be a positive integer, got 0$"):
        PEArray(0, 8, _token(1))
    with pytest.raises(ValueError, match=r"^acc_width must be an integer >= 2, got 1$"):
        PEArray(4, 1, _token(4))


@pytest.mark.parametrize("ports", [2, 4])
def test_several_events_per_token(ports):
    """``ports`` events per token, some tokens short (n < ports): the same sums as one at a
    time."""
    lanes, n_events = 5, 23
    rng = np.random.default_rng(ports)
    w = rng.integers(-1, 2, size=(n_events, lanes))
    mags = rng.integers(0, 256, n_events)
    signs = rng.integers(0, 2, n_events)
    expected = (w * (mags * (1 - 2 * signs))[:, None]).sum(0)
    token = token_layout(depth=32, words=8, neurons=lanes, thresholds=lanes, lanes=lanes,
                         index_bits=5, word_bits=2 * lanes, ports=ports)
    dut = PEArray(lanes, 16, token, ports)
    word_codes = codes.encode(w, 1)
    seen = []

    async def bench(ctx):
        tok = dut.tokens.payload
        e = 0
        while e < n_events:
            n = min(ports, n_events - e, int(rng.integers(1, ports + 1)))
            ctx.set(dut.tokens.valid, 1)
            ctx.set(tok.end, 0)
            ctx.set(tok.n, n)
            for t in range(ports):
                k = min(e + t, n_events - 1)  # slots past n carry junk that must not count
                ctx.set(tok.event[t].magnitude, int(mags[k]))
                ctx.set(tok.event[t].sign, int(signs[k]))
                ctx.set(tok.word[t], int(sum(int(c) << (2 * j)
                                             for j, c in enumerate(word_codes[k]))))
            e += n
            await ctx.tick()
        ctx.set(tok.end, 1)
        await ctx.tick()  # the END's sums leave a cycle later
        assert ctx.get(dut.sums.valid)
        seen.extend(int(a) for a in ctx.get(dut.sums.payload).acc)

    _run(dut, bench)
    assert seen == expected.tolist()
