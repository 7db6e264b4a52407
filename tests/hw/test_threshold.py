# amaranth: UnusedElaboratable=no
"""The threshold and score units against the export's rules (Amaranth simulator)."""

import numpy as np
from amaranth.sim import Simulator

from gxnor.export import thresholds
from gxnor.hw.threshold import ScoreUnit, ThresholdUnit


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


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

    _run(dut, bench)
    assert got == expected.tolist()


def test_score_unit_matches_export_rule():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2000, 2001, 200)
    coef = rng.integers(-(2**15 - 1), 2**15, 200)
    offset = rng.integers(-(2**31), 2**31, 200)
    acc[:2], coef[:2] = [2000, -2000], [2**15 - 1, -(2**15 - 1)]  # the extremes
    expected = thresholds.scores(acc, coef, offset)
    bits = thresholds.signed_bits(int(np.abs(expected).max()))
    dut = ScoreUnit(12, 16, 32, bits)
    got = []

    async def bench(ctx):
        for i in range(len(acc)):
            ctx.set(dut.acc, int(acc[i]))
            ctx.set(dut.params, {"coef": int(coef[i]), "offset": int(offset[i])})
            got.append(ctx.get(dut.score))
            await ctx.delay(1e-6)

    _run(dut, bench)
    assert got == expected.tolist()
