# amaranth: UnusedElaboratable=no
"""PE array and threshold unit against the golden rules (Amaranth simulator, async API)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from gxnor.export import codes, thresholds
from gxnor.hw.pe import PEArray
from gxnor.hw.threshold import ThresholdUnit

pytestmark = pytest.mark.sim


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
    dut = PEArray(lanes, 16)
    word_codes = codes.encode(w, 1)
    seen = []

    async def bench(ctx):
        for e in range(n_events):
            ctx.set(dut.valid, 1)
            ctx.set(dut.end, 0)
            ctx.set(dut.magnitude, int(mags[e]))
            ctx.set(dut.sign, int(signs[e]))
            ctx.set(dut.weights.as_value(), int(sum(int(c) << (2 * j)
                                                    for j, c in enumerate(word_codes[e]))))
            await ctx.tick()
        ctx.set(dut.end, 1)
        await ctx.tick()
        ctx.set(dut.valid, 0)
        ctx.set(dut.end, 0)
        for _ in range(lanes):
            seen.append(ctx.get(dut.shadow[0]))
            ctx.set(dut.shift, 1)
            await ctx.tick()

    _run(dut, bench)
    assert seen == expected.tolist()
    assert seen[0] == 0


def test_pe_array_parameter_errors():
    with pytest.raises(ValueError, match=r"^lanes must be a positive integer, got 0$"):
        PEArray(0, 8)
    with pytest.raises(ValueError, match=r"^acc_width must be an integer >= 2, got 1$"):
        PEArray(4, 1)


def test_threshold_unit_matches_export_rule():
    rng = np.random.default_rng(0)
    n = 300
    flip = rng.integers(0, 2, n)
    lo = rng.integers(-60, 40, n)
    hi = lo + rng.integers(1, 30, n)
    acc = rng.integers(-100, 101, n)
    acc[:4] = [lo[0], hi[1], lo[2] + 1, hi[3] - 1]  # exact boundaries
    expected = thresholds.apply(acc, flip, lo, hi)
    dut = ThresholdUnit(9, 9)
    got = []

    async def bench(ctx):
        for i in range(n):
            ctx.set(dut.acc, int(acc[i]))
            ctx.set(dut.thresholds, {"flip": int(flip[i]), "lo": int(lo[i]), "hi": int(hi[i])})
            out = ctx.get(dut.out)
            got.append(int(out.nonzero) * (1 - 2 * int(out.sign)))
            await ctx.delay(1e-6)

    _run(dut, bench, clock=False)
    assert got == expected.tolist()
