# amaranth: UnusedElaboratable=no
"""The layer pipeline in Amaranth's simulator: bit-exact against the golden model, with
back-pressure while it is full and several images in flight, and cycle-exact against the
pipeline's timeline (counted from outside the DUT)."""

import numpy as np
import pytest

from gxnor.base.errors import InputError
from gxnor.export import format
from gxnor.hw import timing
from gxnor.hw.pipeline import PipelinedAccelerator, image_beats
from gxnor.hw.simulate import image_edges, run_images, trace_pipeline
from gxnor.hw.spec import Fold, PipelineSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden

pytestmark = pytest.mark.sim

# (sizes, folds (lanes, ports, rate) per layer, input ports, buffers): a 1-neuron layer,
# widths off the lane grid, more ports than events, rates above 1, lanes wider than the layer,
# two to four buffers per boundary
CASES = [
    ([9, 1, 7, 3], [(4, 2, 2), (1, 8, 1), (3, 1, 1), (2, 4, 1)], 4, 3),
    ([16, 5], [(16, 4, 8), (8, 1, 1)], 16, 2),
    ([6, 3], [(1, 1, 1), (1, 1, 1)], 1, 4),
]


def images_for(export, n=10, seed=0):
    imgs = random_images(n, (4, 4), density=0.4, seed=seed)
    imgs[3] = 0  # no events at all
    imgs[4] = 255  # every pixel at the largest magnitude
    return imgs


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("pause", [0, 3])
def test_golden_exact_with_back_pressure(random_export, check_results, case, pause):
    sizes, folds, m, buffers = CASES[case]
    export = random_export(sizes, 4, seed=case)
    net = golden.Network(export)
    spec = PipelineSpec.from_export(net.export, folds, m, buffers)
    imgs = images_for(export, seed=case)
    ref = net.run(imgs)
    got = run_images(spec, imgs, idle_every=pause + 2 if pause else 0, stall_every=pause)
    # with pauses the latency is not the free-running one
    check_results(got, ref, None if pause else timing.pipeline_timeline(spec, ref.events)[
        "cycles"])


def test_timeline_counted_from_outside(random_export):
    """Beats offered every cycle, results taken at once: the cycles the testbench sees each
    beat and result equal the timeline's, and images overlap in the engines."""
    sizes, folds, m, buffers = CASES[0]
    export = random_export(sizes, 4, seed=0)
    net = golden.Network(export)
    spec = PipelineSpec.from_export(net.export, folds, m, buffers)
    imgs = images_for(export, n=8)
    ref = net.run(imgs)
    tl = timing.pipeline_timeline(spec, ref.events)
    seen = trace_pipeline(spec, imgs, max_cycles=20_000)
    starts, ends = image_edges(seen["beats_per_image"])
    assert [seen["beat"][s] for s in starts] == tl["first_pixel"].tolist()
    assert [seen["beat"][e] for e in ends] == tl["last_pixel"].tolist()
    assert seen["result"] == tl["result"].tolist()
    assert max(seen["engines_busy"]) >= 3  # images in flight in three engines at once


def test_fold_errors_name_the_layer(random_export):
    net = format.load(random_export([9, 1, 7, 3], 4, seed=0))
    with pytest.raises(InputError, match="4 folds for 4 layers|3 folds for 4 layers"):
        PipelineSpec.from_export(net, [(4, 1, 1)] * 3)
    with pytest.raises(InputError, match=r"^layer 1: rate 2 must divide lanes 3"):
        PipelineSpec.from_export(net, [(4, 1, 1), (3, 1, 2), (4, 1, 1), (4, 1, 1)])
    with pytest.raises(InputError, match=r"^layer 2: ports must be a power of two"):
        PipelineSpec.from_export(net, [(4, 1, 1), (4, 1, 1), (4, 3, 1), (4, 1, 1)])
    with pytest.raises(InputError, match=r"^layer 3: the last layer scores one class"):
        PipelineSpec.from_export(net, [(4, 1, 1)] * 3 + [(4, 1, 2)])
    with pytest.raises(InputError, match=r"^input: ports must be"):
        PipelineSpec.from_export(net, [(4, 1, 1)] * 4, input_ports=3)
    with pytest.raises(InputError, match=r"^buffers must be 2, 3 or 4, got 1"):
        PipelineSpec.from_export(net, [(4, 1, 1)] * 4, buffers=1)
    assert PipelineSpec.from_export(net, [Fold(4)] * 4).folds == (Fold(4, 1, 1),) * 4


def test_beats_encode_the_nonzero_pixels(random_export):
    net = format.load(random_export([6, 3], 4, seed=2))
    spec = PipelineSpec.from_export(net, [(2, 1, 1), (1, 1, 1)], input_ports=4)
    imgs = np.zeros((3, 16), np.uint8)
    imgs[0, [1, 5, 6, 9, 15]] = [10, 20, 30, 40, 255]
    imgs[2, :] = 7
    words, counts = image_beats(spec, imgs)
    assert counts.tolist() == [2, 1, 4]  # 5 events in 2 beats; an empty image is one beat
    shape = PipelinedAccelerator(spec).events.payload.shape()
    beats = [shape.from_bits(sum(int(w) << (32 * k) for k, w in enumerate(r))) for r in words]
    got = [(int(b.n), int(b.last), [(int(b.events[s].index), int(b.events[s].magnitude))
                                    for s in range(int(b.n))]) for b in beats[:3]]
    assert got == [(4, 0, [(1, 10), (5, 20), (6, 30), (9, 40)]), (1, 1, [(15, 255)]),
                   (0, 1, [])]
