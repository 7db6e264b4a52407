# amaranth: UnusedElaboratable=no
"""The sequencer's schedule: per layer SETUP, per group its bundles then END (each END waiting
for the serializer's credit), a later layer's group 0 issuing the events already written at
once and the rest after the layer before's last outputs are committed; the counts it
reports."""

import numpy as np

from gxnor.export import format
from gxnor.hw import timing
from gxnor.hw.layouts import token_layout
from gxnor.hw.sequencer import Sequencer
from gxnor.hw.spec import AcceleratorSpec
from gxnor.sim import golden


def test_tokens_and_cycles(simulate, random_export):
    spec = AcceleratorSpec.from_export(format.load(random_export([9, 5, 3], 4,
                                                                 input_shape=(1, 4, 4))))
    depth = spec.event_depth
    token = token_layout(depth=depth, words=spec.weight_words, neurons=9, thresholds=14,
                         lanes=4, index_bits=4, word_bits=8)
    dut = Sequencer(spec, token, range(depth + 1), settle=timing.SETTLE)
    srcs = [0, 2, 3]  # layer 0 reads the image's input list, the others the hidden lists
    # the hidden lists hold the earlier groups' events when their reader starts, the rest
    # once the writer's last outputs are in: list 2 (layer 0's 9 outputs in groups 0-3, 4-7,
    # 8; events at 0, 1, 4, 8) 3 then 4, list 3 (layer 1's 5 outputs in groups 0-3, 4; all
    # fire) 4 then 5
    early, final = [6, 0, 3, 4], [6, 0, 4, 5]
    events = golden.Events([final[s] for s in srcs],
                           [None, _at([0, 1, 4, 8], 9), _at([0, 1, 2, 3, 4], 5)])
    plan = timing.issue_plan(events, [ly.n_out for ly in spec.layers], 4)
    # the layer before's last outputs are written in cycle w (the count a cycle later):
    # the model's cycle, so that the sequencer's issue is the model's
    commits = {int(groups[0][2]) - 2: s for groups, s in zip(plan[1:], srcs[1:], strict=True)}
    tokens, done = [], []

    async def bench(ctx):
        counts = list(early)
        ctx.set(dut.idle, 1)  # nothing in flight downstream: DRAIN ends at once
        ctx.set(dut.count, counts)
        ctx.set(dut.input_list, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(300):
            ctx.set(dut.committed, cycle in commits)
            if cycle - 1 in commits:
                counts[commits[cycle - 1]] = final[commits[cycle - 1]]
                ctx.set(dut.count, counts)
            if ctx.get(dut.tokens.valid):
                t = ctx.get(dut.tokens.payload)
                tokens.append((cycle, t.src, t.pos, t.end, t.base, t.nbase, t.size, t.last,
                               t.buffer, t.image_end))
            if ctx.get(dut.done):
                await ctx.tick()
                done.append((ctx.get(dut.cycles), [int(e) for e in ctx.get(dut.events)]))
                break
            await ctx.tick()

    simulate(dut, bench)
    assert done and done[0][1] == list(events)
    # the cycles: the model's issue, then DRAIN at once
    assert done[0][0] == int(plan[-1][-1][-1]) + 1 + Sequencer.DRAIN_CYCLES
    wbase, at = 0, 0
    for layer, (e, ly, groups) in enumerate(zip(events, spec.layers, plan, strict=True)):
        for g, (first, n_early, resume, n_late, end) in enumerate(groups):
            group = tokens[at:at + e + 1]
            at += e + 1
            assert {t[1] for t in group} == {srcs[layer]}
            assert {t[7] for t in group} == {layer == 2}
            assert [t[2] for t in group[:-1]] == list(range(e)) and group[-1][3] == 1
            # the cycles: early bundles from `first`, late ones from `resume`, END at `end`
            assert [t[0] for t in group] == [*range(first, first + n_early),
                                             *range(resume, resume + n_late), end]
            assert {t[4] for t in group} == {wbase + g * ly.n_in}
            assert {t[5] for t in group} == {4 * g}
            assert {t[6] for t in group} == {min(4, ly.n_out - 4 * g)}
            # the outputs go to the list the next layer reads; a hidden layer's last group
            # is marked (its outputs complete the list)
            assert {t[8] for t in group} == {layer % 2}
            assert group[-1][9] == (g == len(groups) - 1 and layer < 2)
        wbase += len(groups) * ly.n_in
    assert at == len(tokens)
    # group 0 of layers 1 and 2: the early events before the commit, the rest after it
    for (w, s), groups in zip(sorted(commits.items()), plan[1:], strict=True):
        first, n_early, resume, n_late, end = groups[0]
        assert first + n_early <= w + 2 and resume == w + 2 and n_early == early[s]


def _at(indices, n):
    """A mask of n inputs, these nonzero."""
    mask = np.zeros(n, bool)
    mask[indices] = True
    return mask
