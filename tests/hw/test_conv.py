# amaranth: UnusedElaboratable=no
"""The convolution engine (``gxnor.hw.conv``) in the layer pipeline, in Amaranth's simulator:
bit-exact against the golden model on random conv nets (kernels 1, 3 and 5, one and several
channels, channels off the lane grid, odd and even maps, pooling 1, 2 and 3 with cropped
rows, all-zero and all-nonzero maps, back-pressure) and cycle-exact against the pipeline's
timeline, counted from outside the DUT."""

import numpy as np
import pytest

from gxnor.base.errors import InputError
from gxnor.hw import timing
from gxnor.hw.conv import row_words
from gxnor.hw.simulate import image_edges, run_images, trace_pipeline
from gxnor.hw.spec import AcceleratorSpec, ConvShape, Fold, PipelineSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden

pytestmark = pytest.mark.sim

# (layers, input shape, folds (lanes, ports, rate) per layer, export lanes)
CASES = [
    # kernel 3 + pool 2 on an even map, 3 channels on 2 lanes (off the grid), into fc; a
    # whole kernel row a token (3 banks: the column modulo 3 from a table)
    ([("conv", 3, 3), ("pool", 2), 5], (1, 8, 8), [(2, 3, 1), (5, 1, 1)]),
    # two input channels, conv -> conv (kernel 1) -> pool 2 on a 5x7 map (a cropped row) ->
    # conv kernel 2 -> fc -> fc; rates above 1; kernel 5 at 2 taps a token (a row in 3
    # tokens, the last one's second tap past the row)
    ([("conv", 5, 3), ("conv", 3, 1), ("pool", 2), ("conv", 2, 2), 7, 3], (2, 9, 7),
     [(2, 2, 2), (3, 1, 1), (2, 2, 1), (4, 2, 2), (3, 1, 1)]),
    # kernel 5, pool 3 on an 8x7 map (cropped rows and columns), 4 lanes at rate 4, 5 taps
    ([("conv", 4, 5), ("pool", 3), 3], (1, 12, 11), [(4, 5, 4), (3, 1, 1)]),
    # one channel, one lane, no pooling, a 1-neuron fc layer; one tap a token
    ([("conv", 1, 3), 1, 2], (1, 5, 6), [(1, 1, 1), (1, 1, 1), (2, 1, 1)]),
]


def setup(random_export, case):
    layers, shape, folds = CASES[case]
    export = random_export(layers, 4, input_shape=shape, seed=case)
    net = golden.Network(export)
    spec = PipelineSpec.from_export(net.export, folds, 1, 3)
    imgs = random_images(6, shape if shape[0] > 1 else shape[1:], density=0.4, seed=case)
    imgs[2] = 0  # an all-zero map: no events, every accumulator 0 (pooling ties everywhere)
    imgs[3] = 255  # every activation nonzero
    return net, spec, imgs


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("pause", [0, 3])
def test_conv_golden_exact(random_export, check_results, case, pause):
    net, spec, imgs = setup(random_export, case)
    ref = net.run(imgs)
    got = run_images(spec, imgs, idle_every=pause + 2 if pause else 0, stall_every=pause)
    # with pauses the latency is not the free-running one
    check_results(got, ref, None if pause else timing.pipeline_timeline(spec, ref.events)[
        "cycles"])


def test_conv_maps_are_really_sparse_and_dense(random_export):
    """The cases cover what they claim: a conv layer with no events and one whose every input
    is an event."""
    net, spec, imgs = setup(random_export, 1)
    ref = net.run(imgs)
    assert ref.events[0][2] == 0
    assert ref.events[0][3] == spec.layers[0].conv.events


def test_conv_timeline_counted_from_outside(random_export):
    """Beats offered every cycle, results taken at once: the cycles the testbench sees each
    beat and result equal the timeline's, with images in several engines at once."""
    net, spec, imgs = setup(random_export, 1)
    ref = net.run(imgs)
    tl = timing.pipeline_timeline(spec, ref.events)
    seen = trace_pipeline(spec, imgs, max_cycles=50_000)
    starts, ends = image_edges(seen["beats_per_image"])
    assert [seen["beat"][s] for s in starts] == tl["first_pixel"].tolist()
    assert [seen["beat"][e] for e in ends] == tl["last_pixel"].tolist()
    assert seen["result"] == tl["result"].tolist()
    assert max(seen["engines_busy"]) >= 3


@pytest.mark.parametrize("taps", [1, 2, 3, 5])
def test_conv_work_is_the_scatter_bound(random_export, taps):
    """A conv engine issues E x k x ceil(k / T) tokens per group (T taps a token; E x k^2 at
    one): its steady-state cycles are that plus the drain, whatever the map (the model the
    timeline checks against the RTL)."""
    net, spec, imgs = setup(random_export, 2)
    ref = net.run(imgs)
    ly, fold = spec.layers[0], Fold(spec.folds[0].lanes, taps, spec.folds[0].rate)
    e = ref.events[0]
    cycles = timing.engine_cycles(e, ly.n_out, fold, ly.conv)
    groups = -(-ly.n_out // fold.lanes)
    drain = sum(timing.conv_credits(ly.conv, ly.n_out, fold))
    assert np.array_equal(cycles, e * 5 * {1: 5, 2: 3, 3: 2, 5: 1}[taps] * groups + drain)


def test_row_words_hold_a_token_s_taps():
    """The repacked weights: word (c * k + ky) * S + s of a group holds taps s * T .. of row
    ky, P codes each, zero past the row; groups one after the other."""
    shape = ConvShape(2, 6, 6, 3)
    n_in, lanes = 2 * 9, 2
    words = list(range(1, 2 * n_in + 1))  # two groups, word value = its address + 1
    got = row_words(words, shape, n_in, lanes, 2)
    assert len(got) == 2 * 2 * 3 * 2
    assert got[0] == 1 | 2 << 4 and got[1] == 3  # c 0, ky 0: taps 0, 1; tap 2 alone
    assert got[2] == 4 | 5 << 4  # ky 1
    assert got[6] == 10 | 11 << 4  # c 1, ky 0
    assert got[12] == n_in + 1 | (n_in + 2) << 4  # the second group
    assert row_words(words, shape, n_in, lanes, 1) == words


def test_conv_errors_name_the_layer(random_export):
    layers, shape, folds = CASES[0]
    export = random_export(layers, 4, input_shape=shape, seed=0)
    net = golden.Network(export)
    with pytest.raises(InputError, match=r"^layer 0: a 3x3 convolution's ports \(kernel taps "
                                         r"per token\) must be 1..3, got 4"):
        PipelineSpec.from_export(net.export, [(2, 4, 1), (5, 1, 1)])
    with pytest.raises(InputError, match=r"^layer 1: ports must be a power of two"):
        PipelineSpec.from_export(net.export, [(2, 3, 1), (5, 3, 1)])
    with pytest.raises(InputError, match=r"layers\[0\] is 'conv'.*pipelined schedule"):
        AcceleratorSpec.from_export(net.export)


def test_conv_shape_numbering():
    s = ConvShape(3, 9, 7, 3, 2)  # conv 7x5, pooled 3x2 (a cropped row and column)
    assert (s.conv_height, s.conv_width, s.pooled_height, s.pooled_width) == (7, 5, 3, 2)
    assert (s.used_height, s.used_width, s.positions) == (6, 4, 6)
    assert (s.c_bits, s.y_bits, s.x_bits) == (2, 4, 3)
    idx = s.flat_to_index()
    assert idx[0] == 0 and idx[1] == 1 and idx[7] == 1 << 3 and idx[63] == 1 << 7
    assert len(set(idx.tolist())) == s.events


def test_the_planner_folds_conv_layers(random_export):
    """The planner folds a CNN: taps a token on conv engines, its cycles the conv model's,
    more budget never slower (and more taps), the accumulator banks counted; the plan runs
    bit-exactly."""
    from gxnor.hw import plan

    net, _, imgs = setup(random_export, 0)
    ev = net.run(imgs).events
    small = plan.plan(net.export, ev, plan.Budget(3000, 20))
    big = plan.plan(net.export, ev, plan.Budget(20000, 200))
    assert big.spec.folds[0].ports == 3  # a whole kernel row a token: the fewest cycles
    for p in (small, big):
        assert p.spec.layers[0].conv is not None
        assert p.stages["L0"]["mean"] == pytest.approx(float(np.mean(timing.engine_cycles(
            ev[0], p.spec.layers[0].n_out, p.spec.folds[0], p.spec.layers[0].conv))))
        assert p.luts <= p.budget.luts and p.brams <= p.budget.brams
    assert big.interval <= small.interval
    shape = net.export.layers[0].spec
    for p in (small, big):  # T banks of ceil(W' / T) columns
        taps = p.spec.folds[0].ports
        words = (shape["in_shape"][1] - 2) // 2 * 2 * -(-((shape["in_shape"][2] - 2) // 2 * 2)
                                                         // taps)
        est = plan.estimate(p.spec, 0)
        assert est["acc_brams"] == taps * plan.acc_brams(words, p.spec.folds[0].lanes
                                                         * p.spec.layers[0].acc_bits)
    ref = net.run(imgs)
    got = run_images(big.spec, imgs)
    assert [r["scores"] for r in got] == ref.scores.tolist()


def test_acc_brams():
    from gxnor.hw import plan

    assert plan.acc_brams(36, 64) == 0  # a small map: LUT RAM
    assert plan.acc_brams(576, 16 * 14) == 7 * 2  # 24x24 positions of 16 lanes x 14 bits
    assert plan.acc_brams(512, 36) == 1
