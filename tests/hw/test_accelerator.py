# amaranth: UnusedElaboratable=no
"""The whole accelerator in Amaranth's simulator: bit- and cycle-exact against the golden model."""

import pytest

from gxnor.base.errors import InputError
from gxnor.hw import timing
from gxnor.hw.accelerator import Accelerator
from gxnor.hw.simulate import run_images, send_image
from gxnor.hw.spec import AcceleratorSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden

pytestmark = pytest.mark.sim


def check(export_dir, images, ports=1, rate=1, slices=1, lanes=None, **kwargs):
    net = golden.Network(export_dir)
    spec = AcceleratorSpec.from_export(net, lanes, ports=ports, rate=rate, slices=slices)
    ref = net.run(images)
    got = run_images(spec, images, **kwargs)
    assert len(got) == len(images)
    for i, res in enumerate(got):
        events = ref.events.image(i)
        assert res["events"] == events, f"image {i}: events"
        assert res["scores"] == ref.scores[i].tolist(), f"image {i}: scores"
        assert res["cls"] == int(ref.classes[i]), f"image {i}: class"
        assert res["cycles"] == timing.image_cycles(events, **timing.folding(spec)), \
            f"image {i}"
    return got


# (hidden sizes + classes, lanes, input shape): widths that are and are not multiples of P,
# a 1-neuron hidden layer, P=1, P wider than every layer
CASES = [
    ([8, 4], 4, (1, 4, 4)),
    ([9, 5, 3], 4, (1, 4, 4)),
    ([1, 2], 2, (1, 3, 3)),
    ([7, 3], 1, (1, 3, 3)),
    ([5, 6], 16, (1, 2, 5)),
]


@pytest.mark.parametrize("sizes, lanes, shape", CASES)
def test_random_networks(random_export, sizes, lanes, shape):
    export = random_export(sizes, lanes, input_shape=shape, seed=len(sizes) * 10 + lanes)
    images = random_images(6, shape[1:], density=0.4, seed=lanes)
    images[2] = 0  # all-zero image: no events at all (after two real ones)
    images[1] = 255  # every pixel fires at full scale
    check(export, images)


@pytest.mark.parametrize("ports, rate", [(2, 1), (2, 2), (4, 2), (4, 4), (1, 2), (2, 4)])
def test_several_events_and_neurons_per_cycle(random_export, ports, rate):
    """k events per token and r neurons per serializer cycle: the same classes, scores and
    events, in the cycles the model gives for k and r."""
    export = random_export([9, 13, 3], 4, input_shape=(1, 4, 5), seed=ports * 7 + rate)
    images = random_images(5, (4, 5), density=0.5, seed=rate)
    images[2] = 0
    images[3] = 255
    got = check(export, images, ports=ports, rate=rate)
    assert len({r["cycles"] for r in got}) > 1


@pytest.mark.parametrize("sizes, lanes, slices, rate, memory", [
    ([9, 11, 3], 8, 2, 1, {}), ([9, 11, 3], 12, 4, 2, {}), ([9, 11, 3], 8, 2, 2, {"load": True}),
    ([9, 11, 3], 16, 2, 1, {"external": True}), ([9, 11, 3], 16, 4, 1, {"external": True}),
    # the last layer reading the other hidden list, and the pixels' lists (8-bit magnitudes)
    ([6, 3], 8, 2, 1, {}), ([3], 8, 2, 1, {})])
def test_sliced_last_layer(random_export, sizes, lanes, slices, rate, memory):
    """The last layer's 3 neurons in S slices of the lanes, S events a cycle (a count of
    events off the S grid leaves the last token short): the same classes and scores as the
    golden model, in the cycles the model gives, fewer than unsliced."""
    export = random_export(sizes, 4, input_shape=(1, 4, 5), seed=lanes + slices)
    images = random_images(5, (4, 5), density=0.5, seed=slices)
    images[2] = 0
    images[3] = 255
    got = check(export, images, lanes=lanes, slices=slices, rate=rate, **memory)
    whole = check(export, images, lanes=lanes, rate=rate)
    assert [r["scores"] for r in got] == [r["scores"] for r in whole]
    # each token of the last layer carries S of its E events instead of one: up to
    # E - ceil(E / S) cycles fewer, less where the last layer waits for the last outputs of
    # the layer before (check() holds both to the model)
    saved = [w["cycles"] - r["cycles"] for r, w in zip(got, whole, strict=True)]
    most = [r["events"][-1] - -(-r["events"][-1] // slices) for r in got]
    assert all(0 <= s <= m for s, m in zip(saved, most, strict=True))
    assert sum(saved) > 0


def test_slices_that_do_not_fit_are_refused(random_export):
    net = golden.Network(random_export([9, 3], 4, input_shape=(1, 3, 3), seed=1))
    with pytest.raises(InputError, match="3 neurons do not fit in 4 slices of 8 lanes"):
        AcceleratorSpec.from_export(net, 8, slices=4)
    with pytest.raises(InputError, match="one port"):
        AcceleratorSpec.from_export(net, 8, ports=2, slices=2)
    with pytest.raises(InputError, match="power of two"):
        AcceleratorSpec.from_export(net, 9, slices=3)


def test_all_zero_weight_columns_and_dense_weights(random_export):
    zero = random_export([6, 3], 4, input_shape=(1, 3, 3), seed=4, weight_zeros=1.0)
    dense = random_export([6, 3], 4, input_shape=(1, 3, 3), seed=4, weight_zeros=0.0)
    images = random_images(3, (3, 3), density=0.7, seed=9)
    check(zero, images)
    check(dense, images)


def test_idle_input_and_output_back_pressure(random_export):
    export = random_export([7, 4], 3, input_shape=(1, 3, 3), seed=2)
    images = random_images(4, (3, 3), density=0.5, seed=4)
    a = check(export, images)
    b = check(export, images, idle_every=3, stall_every=2)
    assert a == b  # same numbers whatever the handshakes did


def test_weights_loaded_through_the_stream_port(random_export):
    # the SPRAM path: the memory starts empty, the words arrive over weights_in
    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=8)
    images = random_images(3, (4, 4), density=0.5, seed=8)
    check(export, images, load=True)


def test_external_weight_memory(random_export):
    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=8)
    check(export, random_images(3, (4, 4), density=0.5, seed=9), external=True)


def test_without_loading_the_empty_memory_gives_other_answers(random_export):
    # the load test above can fail: an accelerator whose memory was never written computes
    # with all-zero weights and disagrees with the golden model
    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=8, weight_zeros=0.0)
    net = golden.Network(export)
    spec = AcceleratorSpec.from_export(net)
    images = random_images(2, (4, 4), density=0.9, seed=8)
    from amaranth.sim import Simulator

    dut = Accelerator(spec, loadable=True)
    got = []

    async def bench(ctx):
        ctx.set(dut.scores.ready, 1)
        ctx.set(dut.result.ready, 1)
        for image in images:
            await send_image(ctx, dut, image)
            while not ctx.get(dut.result.valid):
                await ctx.tick()
            got.append(ctx.get(dut.result.payload.events[1]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    ref = net.run(images)
    assert got != [int(e) for e in ref.events[1]]  # zero weights: thresholds of acc = 0


def test_cycle_count_tracks_the_event_bound(random_export):
    export = random_export([16, 4], 4, input_shape=(1, 6, 6), seed=3)
    sparse = random_images(2, (6, 6), density=0.1, seed=1)
    dense = random_images(2, (6, 6), density=0.9, seed=1)
    lo = check(export, sparse)
    hi = check(export, dense)
    assert max(r["cycles"] for r in lo) < min(r["cycles"] for r in hi)


@pytest.mark.mnist
@pytest.mark.slow
def test_trained_mnist_net(mnist_trained_export, mnist_path):
    from gxnor.model.data import load_mnist

    ds = load_mnist(mnist_path, download_missing=False)
    got = check(mnist_trained_export, ds.test.images[:3])
    assert all(1000 < r["cycles"] < 20000 for r in got)


def test_spec_rejects_conv_and_multilevel(random_export):
    export = random_export([3, 2], 2, n_bits=2)
    with pytest.raises(ValueError, match=r"weights are Z_2; the gated-XNOR array runs binary"):
        AcceleratorSpec.from_export(golden.Network(export))
    with pytest.raises(TypeError, match=r"spec must be an AcceleratorSpec"):
        Accelerator("nope")
