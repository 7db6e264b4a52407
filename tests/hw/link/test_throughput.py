# amaranth: UnusedElaboratable=no
"""The on-chip throughput harness in Amaranth's simulator, joined to either schedule: every
counter it reports equals the prediction from the golden model and the cycle model (the
cycles counted by the testbench from outside as well), a wrong stored class is counted as a
mismatch and changes nothing else, and a second run after the first starts from zero."""

import zlib

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from gxnor.base.errors import InputError
from gxnor.hw import timing
from gxnor.hw.accelerator import Accelerator
from gxnor.hw.link import throughput as T
from gxnor.hw.pipeline import PipelinedAccelerator
from gxnor.hw.spec import AcceleratorSpec, PipelineSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden

pytestmark = pytest.mark.sim


def harnessed(spec, images, classes):
    """The harness feeding an accelerator of ``spec``; returns (module, harness, accel)."""
    m = Module()
    h = T.ThroughputHarness(spec, images, classes)
    if isinstance(spec, PipelineSpec):
        acc = PipelinedAccelerator(spec)
        wiring.connect(m, h.events, acc.events)
    else:
        acc = Accelerator(spec)
        wiring.connect(m, h.pixels, acc.pixels)
    m.submodules.harness, m.submodules.accel = h, acc
    m.d.comb += [h.scores.valid.eq(acc.scores.valid), h.scores.payload.eq(acc.scores.payload),
                 acc.scores.ready.eq(1), h.result.valid.eq(acc.result.valid),
                 h.result.payload.eq(acc.result.payload), acc.result.ready.eq(1)]
    return m, h, acc


def run_bench(spec, images, classes, counts):
    """Run the harness for each of ``counts`` in turn; per run: its counters and the cycles
    the testbench saw from the first input offered to the last result taken."""
    m, h, acc = harnessed(spec, images, classes)
    inp = h.events if isinstance(spec, PipelineSpec) else h.pixels
    runs = []

    async def bench(ctx):
        for count in counts:
            ctx.set(h.run.payload, count)
            ctx.set(h.run.valid, 1)
            await ctx.tick().until(h.run.ready)
            ctx.set(h.run.valid, 0)
            cycle, first, last = 0, None, None
            while True:
                await ctx.delay(1e-9)
                if first is None and ctx.get(inp.valid):
                    first = cycle
                if ctx.get(acc.result.valid):
                    last = cycle
                if not ctx.get(h.busy) and cycle > 1:
                    break
                await ctx.tick()
                cycle += 1
            c = ctx.get(h.counters)
            seen = 0 if first is None else last - first + 1
            runs.append({"images": c.images, "mismatches": c.mismatches, "cycles": c.cycles,
                         "crc": c.crc, "seen": seen, "first": first})
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return runs


CASES = [  # (sizes, the pipeline's folds or None for the shared engine, input ports)
    ([7, 3], None, 1),
    ([9, 1, 7, 3], [(4, 2, 2), (1, 8, 1), (3, 1, 1), (2, 4, 1)], 4),
    ([6, 2], [(1, 1, 1), (1, 1, 1)], 1),
    ([("conv", 2, 3), 3], [(2, 1, 1), (3, 1, 1)], 1),  # a conv first layer: packed pixels
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_counters_equal_the_prediction(random_export, case):
    sizes, folds, m = CASES[case]
    net = golden.Network(random_export(sizes, 4, seed=case))
    spec = (AcceleratorSpec.from_export(net.export, 4) if folds is None
            else PipelineSpec.from_export(net.export, folds, m, 3))
    images = random_images(5, (4, 4), density=0.4, seed=case)
    images[1] = 0  # no events
    images[2] = 255  # every pixel
    ref = net.run(images)
    counts = [12, 0, 3]  # more images than stored (replayed), none, fewer
    runs = run_bench(spec, images, ref.classes, counts)
    for count, got in zip(counts, runs, strict=True):
        want = T.expected(spec, ref.events, ref.classes, count)
        assert got["seen"] == want["cycles"], f"{count} images: cycles seen from outside"
        if count:  # (cycle 0: the one after the cycle the run was taken)
            assert got["first"] + 1 == T.ThroughputHarness.latency, "the harness's latency"
        assert {k: got[k] for k in want} == want, f"{count} images"


def test_a_wrong_class_is_a_mismatch(random_export):
    net = golden.Network(random_export([7, 3], 4, seed=0))
    spec = PipelineSpec.from_export(net.export, [(2, 1, 1), (3, 2, 1)], 2, 2)
    images = random_images(4, (4, 4), density=0.5, seed=3)
    ref = net.run(images)
    wrong = ref.classes.copy()
    wrong[2] = (wrong[2] + 1) % 3
    (got,) = run_bench(spec, images, wrong, [9])
    want = T.expected(spec, ref.events, ref.classes, 9)
    assert got["mismatches"] == 2  # stored image 2 is replayed as images 2 and 6
    assert (got["images"], got["cycles"], got["crc"]) == \
        (want["images"], want["cycles"], want["crc"])


def test_crc_is_zlib_over_the_result_bytes(random_export):
    """The CRC's definition, written out: zlib.crc32 over each result's bytes (class, cycles,
    events per layer, little-endian), padded to whole CRC words (3 classes: results can come
    4 cycles apart, so 9 bytes go in as 3 three-byte words), chained over the images."""
    net = golden.Network(random_export([7, 3], 4, seed=0))
    spec = AcceleratorSpec.from_export(net.export, 4)
    # two stored images: 2 and 0 pixel events, 1 hidden event each (neuron 6 and neuron 0)
    hidden = np.zeros((2, 7), bool)
    hidden[0, 6] = hidden[1, 0] = True
    events = golden.Events([np.array([2, 0]), np.array([1, 1])], [None, hidden])
    classes = np.array([1, 2])
    assert T.crc_chunk(spec) == 3 and T.result_bytes(spec) == 9
    cycles = timing.timeline(spec, events.select([0, 1, 0]))["cycles"]
    value = 0
    for k, stored in enumerate([0, 1, 0]):
        value = zlib.crc32(bytes([classes[stored]]) + int(cycles[k]).to_bytes(4, "little")
                           + bytes([events[0][stored], 0, events[1][stored], 0]), value)
    assert T.expected(spec, events, classes, 3)["crc"] == value


def test_bad_stores_are_refused(random_export):
    net = golden.Network(random_export([7, 3], 4, seed=0))
    spec = AcceleratorSpec.from_export(net.export, 4)
    with pytest.raises(InputError, match="pixels"):
        T.ThroughputHarness(spec, np.zeros((2, 15), np.uint8), [0, 1])
    with pytest.raises(InputError, match="class"):
        T.ThroughputHarness(spec, np.zeros((2, 16), np.uint8), [0, 3])
