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
from gxnor.hw.conv import axis_decode, tile_words
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
    # conv kernel 2 -> fc -> fc; rates above 1; kernel 3 at 2 taps a token (a row in 2
    # tokens, the second one's second tap past the row); kernel 2 whole (2 x 2 banks)
    ([("conv", 5, 3), ("conv", 3, 1), ("pool", 2), ("conv", 2, 2), 7, 3], (2, 9, 7),
     [(2, 2, 2), (3, 1, 1), (2, 4, 1), (4, 2, 2), (3, 1, 1)]),
    # kernel 5, pool 3 on an 8x7 map (cropped rows and columns), 4 lanes at rate 4; two
    # kernel rows a token (3 tokens down, the last one's second row past the kernel)
    ([("conv", 4, 5), ("pool", 3), 3], (1, 12, 11), [(4, 10, 4), (3, 1, 1)]),
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


@pytest.mark.parametrize("taps", [1, 2, 3, 5, 10, 15, 25])
def test_conv_work_is_the_scatter_bound(random_export, taps):
    """A conv engine issues E x (tokens a kernel) per group (T taps a token: part of a row
    or whole rows; E x k^2 at one): its steady-state cycles are that plus the drain,
    whatever the map (the model the timeline checks against the RTL)."""
    net, spec, imgs = setup(random_export, 2)
    ref = net.run(imgs)
    ly, fold = spec.layers[0], Fold(spec.folds[0].lanes, taps, spec.folds[0].rate)
    e = ref.events[0]
    cycles = timing.engine_cycles(e, ly.n_out, fold, ly.conv)
    groups = -(-ly.n_out // fold.lanes)
    drain = sum(timing.conv_credits(ly.conv, ly.n_out, fold))
    tokens = {1: 25, 2: 15, 3: 10, 5: 5, 10: 3, 15: 2, 25: 1}[taps]
    assert np.array_equal(cycles, e * tokens * groups + drain)


def test_tile_words_hold_a_token_s_taps():
    """The repacked weights: word sy * Sx + sx of channel c in a group holds the token's tile
    of kernel taps, P codes each, zero past the kernel; groups one after the other."""
    shape = ConvShape(2, 6, 6, 3)
    n_in, lanes = 2 * 9, 4  # 8-bit words
    words = list(range(1, 2 * n_in + 1))  # two groups, word value = its address + 1

    def pack(*vals):
        return sum(v << (8 * i) for i, v in enumerate(vals))

    got = tile_words(words, shape, n_in, lanes, 2)  # a row in two tokens
    assert len(got) == 2 * 2 * 3 * 2
    assert got[0] == pack(1, 2) and got[1] == pack(3)  # c 0, ky 0: taps 0, 1; tap 2 alone
    assert got[2] == pack(4, 5)  # ky 1
    assert got[6] == pack(10, 11)  # c 1, ky 0
    assert got[12] == pack(n_in + 1, n_in + 2)  # the second group
    got = tile_words(words, shape, n_in, lanes, 6)  # two rows a token: two tokens down
    assert len(got) == 2 * 2 * 2
    assert got[0] == pack(1, 2, 3, 4, 5, 6) and got[1] == pack(7, 8, 9)
    assert got[2] == pack(10, 11, 12, 13, 14, 15)
    assert tile_words(words, shape, n_in, lanes, 9)[:2] == [pack(*range(1, 10)),
                                                             pack(*range(10, 19))]
    assert tile_words(words, shape, n_in, lanes, 1) == words


def test_conv_errors_name_the_layer(random_export):
    layers, shape, folds = CASES[0]
    export = random_export(layers, 4, input_shape=shape, seed=0)
    net = golden.Network(export)
    for ports in (4, 10, 12):
        with pytest.raises(InputError, match=r"^layer 0: a 3x3 convolution's ports \(kernel "
                                             r"taps per token.*must be 1..3 or a multiple of 3 "
                                             rf"up to 9, got {ports}"):
            PipelineSpec.from_export(net.export, [(2, ports, 1), (5, 1, 1)])
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
    assert big.spec.folds[0].ports == 9  # the whole kernel a token: the fewest cycles
    for p in (small, big):
        assert p.spec.layers[0].conv is not None
        assert p.stages["L0"]["mean"] == pytest.approx(float(np.mean(timing.engine_cycles(
            ev[0], p.spec.layers[0].n_out, p.spec.folds[0], p.spec.layers[0].conv))))
        assert p.luts <= p.budget.luts and p.brams <= p.budget.brams
    assert big.interval <= small.interval
    shape = net.export.layers[0].spec
    used = [(n - 2) // 2 * 2 for n in shape["in_shape"][1:]]  # the conv rows/cols pooled
    for p in (small, big):  # a bank per tap of the tile, each 1 / taps of the map
        taps = p.spec.folds[0].ports
        ty, tx = (1, taps) if taps <= 3 else (taps // 3, 3)
        words = -(-used[0] // ty) * -(-used[1] // tx)
        est = plan.estimate(p.spec, 0)
        assert est["acc_brams"] == taps * plan.acc_brams(words, p.spec.folds[0].lanes
                                                         * p.spec.layers[0].acc_bits)
    ref = net.run(imgs)
    got = run_images(big.spec, imgs)
    assert [r["scores"] for r in got] == ref.scores.tolist()


def test_acc_brams():
    from gxnor.hw import plan

    assert plan.acc_brams(36, 64) == 0  # a small map: LUT RAM
    assert plan.acc_brams(576, 16 * 14) == 13  # 24x24 positions of 16 lanes x 14 bits: 18-bit
    # x 1024 blocks
    assert plan.acc_brams(512, 36) == 1


@pytest.mark.parametrize("kernel, size, used", [(5, 5, 8), (5, 2, 24), (3, 1, 6), (3, 3, 5),
                                                (2, 2, 3)])
def test_axis_decode_is_the_scatter_by_bank(kernel, size, used):
    """Each bank b takes, of the tile's taps, the one whose output (v - seg * size - tap)
    is in b's residue class; ok exactly when that output is on the map and the tap in the
    kernel (brute force over every coordinate and segment)."""
    v_bits, segs = 5, 4
    table = axis_decode(kernel, size, used, v_bits, segs)
    for seg in range(segs):
        for v in range(1 << v_bits):
            row = table[v | seg << v_bits]
            for b in range(size):
                (tap,) = [t for t in range(size) if (v - seg * size - t) % size == b]
                out = v - seg * size - tap
                ok = 0 <= out < used and seg * size + tap < kernel
                assert row[b][0] == tap and row[b][2] == int(ok), (v, seg, b)
                if ok:
                    assert row[b][1] * size + b == out
