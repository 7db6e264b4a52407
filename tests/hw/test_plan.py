"""The folding planner: plans fit their budget, a bigger budget is never slower, a budget that
cannot fit names the layer, hand folds parse or fail clearly."""

import numpy as np
import pytest

from gxnor.base.errors import InputError
from gxnor.export import format
from gxnor.hw import plan, timing
from gxnor.hw.spec import Fold, PipelineSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden


@pytest.fixture
def net_events(random_export):
    export = random_export([40, 24, 5], 8, input_shape=(1, 8, 8), seed=11)
    images = random_images(64, (8, 8), density=0.4, seed=11)
    return export, format.load(export), golden.Network(export).run(images).events


def test_plans_fit_their_budget_and_more_budget_is_never_slower(net_events):
    _, net, events = net_events
    intervals = []
    for luts in (4000, 6000, 10000, 40000):
        p = plan.plan(net, events, plan.Budget(luts, 100), slack=0.0)
        assert p.luts <= luts and p.brams <= 100
        assert p.luts == sum(plan.estimate(p.spec, i)["luts"] for i in range(3))
        # the stage table is the cycle model's
        cyc = timing.stage_cycles(p.spec, events)
        for name, row in p.stages.items():
            assert row["mean"] == pytest.approx(float(np.mean(cyc[name])))
            assert row["max"] == int(np.max(cyc[name]))
        # the interval is about the slowest stage's mean cycles or more (over n - 1 gaps
        # between n results: the first image's own cycles are not in it)
        assert p.interval >= 0.97 * max(r["mean"] for r in p.stages.values())
        intervals.append(p.interval)
    assert intervals == sorted(intervals, reverse=True)
    assert intervals[-1] < intervals[0]  # the budget buys speed
    text = p.table()
    assert "<- bounds the pipeline" in text and f"{p.interval:.1f} cycles/image" in text


def test_target_cycles_takes_the_cheapest_plan_meeting_it(net_events):
    _, net, events = net_events
    fast = plan.plan(net, events, plan.Budget(50000, 200), slack=0.0)
    slow = plan.plan(net, events, plan.Budget(50000, 200), target_cycles=60)
    assert all(r["mean"] <= 60 for n, r in slow.stages.items() if n != "output")
    assert slow.luts <= fast.luts


def test_a_budget_that_cannot_fit_names_the_layer(net_events):
    _, net, events = net_events
    with pytest.raises(InputError, match=r"layer 0 \(64x40\): even its smallest fold"):
        plan.plan(net, events, plan.Budget(200, 100))
    with pytest.raises(InputError, match="budget luts must be a positive integer"):
        plan.plan(net, events, plan.Budget(0, 10))


def test_describe_hand_folds(net_events):
    _, net, events = net_events
    spec = PipelineSpec.from_export(net, [(8, 2, 4), (24, 1, 1), (5, 2, 1)], 2)
    p = plan.describe(spec, events, plan.device_budget("LFE5U-85F"))
    assert [p.stages[f"L{i}"]["lanes"] for i in range(3)] == [8, 24, 5]
    tl = timing.pipeline_timeline(spec, events)
    assert p.interval == pytest.approx(float(np.diff(tl["result"]).mean()))
    assert p.to_json()["folds"] == [[8, 2, 4], [24, 1, 1], [5, 2, 1]]


def test_parse_folds():
    assert plan.parse_folds("256x4x8, 256x4x8,10x4") == [Fold(256, 4, 8), Fold(256, 4, 8),
                                                          Fold(10, 4, 1)]
    for bad, msg in (("256x4x8,abc", "layer 1: 'abc' is not LANES"),
                     ("256x65", "layer 0: ports must be 1..64"),
                     ("10x1x4", "layer 0: rate 4 must divide lanes 10"),
                     ("1x1x1x1", "layer 0: '1x1x1x1'")):
        with pytest.raises(InputError, match=msg):
            plan.parse_folds(bad)
    with pytest.raises(InputError, match="no resource table for device 'XC7'"):
        plan.device_budget("XC7")


def test_weight_brams():
    # 784 x 512-bit words, 4 read ports: two true-dual-port copies of 29 x 1 blocks
    assert plan.weight_brams(784, 512, 4) == 2 * 29
    assert plan.weight_brams(1000, 20, 1) == 2  # 36 x 512 blocks
    assert plan.weight_brams(256, 20, 4) == 2 * 2  # two copies of 2 blocks 18 bits wide
    assert plan.weight_brams(64, 20, 4) == 0  # small: logic
    assert plan.weight_brams(51200, 2, 1) == 7  # a narrow ROM: 2 bits x 8192 blocks
    assert plan.blocks(4608, 15) == 5 and plan.blocks(4608, 15, dual=True) == 5  # 9 x 2048
