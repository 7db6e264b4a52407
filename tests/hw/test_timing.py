"""The cycle model (gxnor.hw.timing)."""

import numpy as np
import pytest

from gxnor.hw import timing
from gxnor.sim import golden


def test_cycle_model_formula_by_hand():
    # 5 outputs on 2 lanes: groups of 2, 2, 1. With E = 0: max(1, 0) + max(1, 2) + max(1, 2)
    assert timing.group_sizes(5, 2) == [2, 2, 1]
    tail = timing.PIPELINE + 1 + timing.SERIALIZER_LATENCY + timing.DRAIN
    assert timing.image_cycles([0], [5], 2) == timing.SETUP + 1 + 2 + 2 + tail
    assert timing.image_cycles([10], [5], 2) == timing.SETUP + 3 * 11 + tail
    np.testing.assert_array_equal(timing.image_cycles([np.array([0, 10])], [5], 2),
                                  [timing.SETUP + 5 + tail, timing.SETUP + 33 + tail])
    # two layers, 5 -> 3 on 2 lanes; layer 1's 4 events, one of them (index 4) from layer
    # 0's last group. Layer 0: SETUP, 11, 11, then the last group waits SETTLE more than the
    # credit: END at max(33, 24 + SETTLE). Layer 1 starts the next cycle: 3 early events at
    # once, the late one COMMIT + 1 after that END, its END a cycle later; its group 1 after
    # max(4 + 1, 2) cycles; then the last layer's tail.
    events = golden.Events([10, 4], [None, np.array([1, 1, 1, 0, 1], bool)])
    end0 = max(33, 24 + timing.SETTLE)
    end1 = max(end0 + 2 + 3, end0 + timing.COMMIT + 1) + 1 + 5
    assert timing.image_cycles(events, [5, 3], 2) == end1 + 1 + tail
    # where the events are matters: the same counts, none from the last group
    early = golden.Events([10, 4], [None, np.array([1, 1, 1, 1, 0], bool)])
    assert timing.image_cycles(early, [5, 3], 2) == \
        max(end0 + 2 + 4, end0 + timing.COMMIT + 1) + 5 + 1 + tail
    # a count alone cannot say: the model refuses
    with pytest.raises(ValueError, match="layer 1 follows a layer of 3 groups"):
        timing.image_cycles([10, 4], [5, 3], 2)
    assert timing.dense_cycles([16, 5], [5, 3], 2) == timing.image_cycles(
        golden.Events([16, 5], [None, np.ones(5, bool)]), [5, 3], 2)


def test_event_bound_is_a_lower_bound():
    e = np.arange(0, 300)
    assert np.all(timing.image_cycles([e], [256], 8) >= timing.event_bound(e, 256, 8))


def _events(counts, outputs, seed):
    """golden.Events of one image with these counts, the events at random places."""
    rng = np.random.default_rng(seed)
    fired = [None]
    for e, n in zip(counts[1:], outputs, strict=False):
        mask = np.zeros(n, bool)
        mask[rng.choice(n, e, replace=False)] = True
        fired.append(mask)
    return golden.Events(counts, fired)


def test_schedule_matches_the_formula():
    for events, outputs, lanes in (([3, 2], [4, 2], 2), ([0, 5, 1], [7, 3, 2], 3),
                                   ([9], [1], 4), ([2, 0], [9, 5], 1)):
        events = _events(events, outputs, len(outputs))
        rows = timing.schedule(events, outputs, lanes)
        total = timing.image_cycles(events, outputs, lanes)
        assert max(max(r) for r in rows.values() if r) < total
        issued = [label for _, label in sorted(rows["issue"].items())]
        want = sum((e + 1) * len(timing.group_sizes(n, lanes))
                   for e, n in zip(events, outputs, strict=True))
        assert len(issued) == want


def test_the_rtl_trace_is_the_schedule(random_export):
    """Cycle by cycle, counted from outside the DUT: the cycles in which each block holds
    work (the accelerator's ``stages`` port) are the cycle model's schedule."""
    from amaranth.sim import Simulator

    from gxnor.export import format
    from gxnor.hw.accelerator import Accelerator
    from gxnor.hw.simulate import send_image
    from gxnor.hw.spec import AcceleratorSpec
    from gxnor.model.random_net import random_images
    from gxnor.sim import golden

    export = random_export([7, 5, 3], 3, input_shape=(1, 3, 4), seed=12)
    net = golden.Network(export)
    spec = AcceleratorSpec.from_export(format.load(export))
    images = random_images(4, (3, 4), density=0.6, seed=2)
    images[1] = 0
    dut = Accelerator(spec)
    traces = []

    async def bench(ctx):
        ctx.set(dut.scores.ready, 1)
        ctx.set(dut.result.ready, 1)
        for image in images:
            await send_image(ctx, dut, image)
            rows = {b: set() for b in timing.BLOCKS}
            cycle = -timing.TAKE  # 0: the first counted cycle (the engine was idle)
            while not ctx.get(dut.result.valid):
                trace = ctx.get(dut.stages)
                for b in timing.BLOCKS:
                    if getattr(trace, b):
                        rows[b].add(cycle)
                await ctx.tick()
                cycle += 1
            traces.append((rows, ctx.get(dut.result.payload.cycles)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    outputs = [ly.n_out for ly in spec.layers]
    res = net.run(images)
    for i, (rows, counted) in enumerate(traces):
        events = res.events.image(i)
        want = timing.schedule(events, outputs, spec.lanes)
        for b in timing.BLOCKS:
            assert rows[b] == set(want[b]), f"image {i}: {b}"
        assert counted == timing.image_cycles(events, outputs, spec.lanes)
