# amaranth: UnusedElaboratable=no
"""The sequencer's schedule: per layer SETUP, per group E event tokens then END (each END
waiting for the serializer's credit), DRAIN; the counts it reports."""

import math

from gxnor.export import format
from gxnor.hw import timing
from gxnor.hw.layouts import token_layout
from gxnor.hw.sequencer import Sequencer
from gxnor.hw.spec import AcceleratorSpec


def test_tokens_and_cycles(simulate, random_export):
    spec = AcceleratorSpec.from_export(format.load(random_export([9, 5, 3], 4,
                                                                 input_shape=(1, 4, 4))))
    depth = spec.event_depth
    token = token_layout(depth=depth, words=spec.weight_words, neurons=9, thresholds=14,
                         lanes=4, index_bits=4, word_bits=8)
    dut = Sequencer(spec, token, range(depth + 1))
    counts = [6, 0, 4, 5]  # the input lists (0, 1), the hidden lists (2, 3)
    tokens, done = [], []

    async def bench(ctx):
        ctx.set(dut.idle, 1)  # nothing in flight downstream: DRAIN ends at once
        ctx.set(dut.count, counts)
        ctx.set(dut.input_list, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(200):
            if ctx.get(dut.tokens.valid):
                t = ctx.get(dut.tokens.payload)
                tokens.append((cycle, t.src, t.pos, t.end, t.base, t.nbase, t.size, t.last))
            if ctx.get(dut.done):
                await ctx.tick()
                done.append((ctx.get(dut.cycles), [int(e) for e in ctx.get(dut.events)]))
                break
            await ctx.tick()

    simulate(dut, bench)
    srcs = [0, 2, 3]  # layer 0 reads the image's input list, the others the hidden lists
    events = [counts[s] for s in srcs]
    assert done and done[0][1] == events
    assert done[0][0] == sum(_layer(e, ly.n_out, 4) for e, ly in zip(events, spec.layers,
                                                                     strict=True))
    wbase = 0
    ends = [t for t in tokens if t[3]]
    for layer, (e, ly) in enumerate(zip(events, spec.layers, strict=True)):
        groups = math.ceil(ly.n_out / 4)
        first = sum(math.ceil(ly_.n_out / 4) * (e_ + 1)
                    for e_, ly_ in zip(events[:layer], spec.layers, strict=False))
        mine = tokens[first:first + groups * (e + 1)]
        assert {t[1] for t in mine} == {srcs[layer]} and {t[7] for t in mine} == {layer == 2}
        for g in range(groups):
            group = mine[g * (e + 1):(g + 1) * (e + 1)]
            assert [t[2] for t in group[:-1]] == list(range(e)) and group[-1][3] == 1
            assert {t[4] for t in group} == {wbase + g * ly.n_in}
            assert {t[5] for t in group} == {4 * g}
            assert {t[6] for t in group} == {min(4, ly.n_out - 4 * g)}
        wbase += groups * ly.n_in
    # an END waits until the serializer has taken the previous group (n_{g-1} cycles)
    for a, b in zip(ends, ends[1:], strict=False):
        if a[7] == b[7] and a[1] == b[1] and b[5] > a[5]:
            assert b[0] - a[0] >= a[6]


def _layer(e, n_out, lanes):
    """Cycles of a layer when nothing is in flight downstream (DRAIN at once)."""
    sizes = timing.group_sizes(n_out, lanes)
    return (Sequencer.SETUP_CYCLES + sum(max(e + 1, p) for p in [0, *sizes[:-1]])
            + Sequencer.DRAIN_CYCLES)
