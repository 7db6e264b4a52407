# amaranth: UnusedElaboratable=no
"""The serializer: a group's sums through the threshold unit (nonzero outputs become events)
or the score unit, one neuron per cycle, `latency` cycles after each neuron starts."""

import numpy as np
import pytest

from gxnor.export import format, thresholds
from gxnor.hw.layouts import event_layout, token_layout
from gxnor.hw.pe import sums_layout
from gxnor.hw.serializer import Serializer
from gxnor.hw.spec import AcceleratorSpec


@pytest.mark.parametrize("rate", [1, 2, 4])
def test_thresholds_and_scores(simulate, random_export, rate):
    exp = format.load(random_export([7, 5], 4, input_shape=(1, 3, 3), seed=2))
    spec = AcceleratorSpec.from_export(exp, ports=rate, rate=rate)
    token = token_layout(depth=9, words=spec.weight_words, neurons=7, thresholds=7, lanes=4,
                         index_bits=4, word_bits=8, ports=rate)
    dut = Serializer(spec, sums_layout(4, spec.acc_bits, token), event_layout(4))
    rng = np.random.default_rng(0)
    m0 = exp.layers[0].spec["acc_max_abs"]
    acc0 = rng.integers(-m0, m0 + 1, 8)  # layer 0: two groups (4 + 3 neurons)
    acc1 = rng.integers(-7, 8, 8)  # the last layer: groups of 4 + 1 classes
    events, scores, starts = [], [], {}

    async def bench(ctx):
        groups = [(acc0[:4], 0, 0, 4, 0), (acc0[4:], 4, 4 // rate, 3, 0),
                  (acc1[:4], 0, 0, 4, 1), (acc1[4:], 4, 0, 1, 1)]
        cycle = 0
        queue = []
        for acc, nbase, taddr, size, last in groups:
            queue.append((cycle, acc, nbase, taddr, size, last))
            step = 1 if last else rate
            cycle += -(-size // step)  # the next group may arrive when this one is through
        for cycle in range(40):
            if queue and queue[0][0] == cycle:
                _, acc, nbase, taddr, size, last = queue.pop(0)
                ctx.set(dut.sums.payload, {"acc": [int(a) for a in acc], "nbase": nbase,
                                           "taddr": taddr, "size": size, "last": last})
                ctx.set(dut.sums.valid, 1)
                for j in range(size):  # neuron j starts the cycle after the group arrives
                    starts[(last, nbase + j)] = cycle + 1 + j // (1 if last else rate)
            else:
                ctx.set(dut.sums.valid, 0)
            if ctx.get(dut.events.valid):
                bundle = ctx.get(dut.events.payload)
                assert 1 <= bundle.n <= rate
                events.extend((cycle, e.index, e.sign) for e in list(bundle.events)[:bundle.n])
            if ctx.get(dut.scores.valid):
                s = ctx.get(dut.scores.payload)
                scores.append((cycle, s.cls, s.score))
            await ctx.tick()

    simulate(dut, bench)
    ly0, ly1 = exp.layers
    out = thresholds.apply(acc0[:7], ly0.flip, ly0.lo, ly0.hi)
    want_events = [(int(i), int(out[i] < 0)) for i in np.flatnonzero(out)]
    assert [(i, s) for _, i, s in events] == want_events
    assert all(c == starts[(0, i)] + Serializer.latency for c, i, _ in events)
    want_scores = thresholds.scores(acc1[:5], ly1.coef, ly1.offset).tolist()
    assert [v for _, _, v in scores] == want_scores
    assert [c for _, c, _ in scores] == list(range(5))
    assert all(cyc == starts[(1, c)] + Serializer.latency for cyc, c, _ in scores)
