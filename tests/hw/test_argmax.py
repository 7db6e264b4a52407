# amaranth: UnusedElaboratable=no
"""The classifier: the argmax with ties to the lowest class, the scores out in class order
under back-pressure."""

import numpy as np
import pytest

from gxnor.export import thresholds
from gxnor.hw.argmax import Classifier
from gxnor.hw.serializer import score_out_layout
from gxnor.hw.spec import AcceleratorSpec, LayerSpec


def _spec(classes):
    last = LayerSpec(4, classes, 8, (0,) * 4, coef=(1,) * classes, offset=(0,) * classes)
    return AcceleratorSpec(4, (last,), 2, 16, 32, 20)


@pytest.mark.parametrize("scores", [[3, 9, 9, -2, 9], [-5, -5], [7], [0, -1, 4, 4, 1, 4]])
def test_argmax_and_scores_out(simulate, scores):
    n = len(scores)
    dut = Classifier(n, score_out_layout(_spec(n)))
    got, sent = [], []

    async def bench(ctx):
        for _ in range(2):  # two images: the argmax starts afresh
            for c, s in enumerate(scores):
                ctx.set(dut.scores_in.payload, {"cls": c, "score": s})
                ctx.set(dut.scores_in.valid, 1)
                await ctx.tick()
            ctx.set(dut.scores_in.valid, 0)
            ctx.set(dut.send, 1)
            await ctx.tick()
            ctx.set(dut.send, 0)
            rng = np.random.default_rng(n)
            image = []
            for cycle in range(8 * n + 8):
                ready = bool(rng.random() < 0.5)
                ctx.set(dut.scores.ready, ready)
                if ready and ctx.get(dut.scores.valid):
                    image.append(ctx.get(dut.scores.payload))
                if ctx.get(dut.sent):
                    sent.append(cycle)
                await ctx.tick()
            got.append((ctx.get(dut.cls), image))

    simulate(dut, bench)
    want = int(thresholds.argmax_lowest(np.array(scores)))
    assert got == [(want, scores)] * 2
    assert len(sent) == 2
