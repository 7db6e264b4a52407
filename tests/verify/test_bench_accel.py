"""cocotb on the Verilog that `gxnor rtl` emits, against the golden model (Icarus by default)."""

import dataclasses

import numpy as np
import pytest

from gxnor.hw import rtl
from gxnor.hw.spec import AcceleratorSpec
from gxnor.model.random_net import random_images
from gxnor.sim import golden
from gxnor.verify import runner

pytestmark = pytest.mark.sim

# (sizes, lanes, input shape, weight zeros): widths off the lane grid, a 1-neuron layer,
# P = 1, all-zero weights, dense weights
NETWORKS = [
    ([8, 4], 4, (1, 4, 4), 0.5),
    ([9, 5, 3], 4, (1, 4, 4), 0.3),
    ([1, 2], 2, (1, 3, 3), 0.5),
    ([7, 3], 1, (1, 3, 3), 0.5),
    ([6, 3], 4, (1, 3, 3), 1.0),
    ([6, 3], 4, (1, 3, 3), 0.0),
]


def _images(shape, seed, n=8):
    images = random_images(n, shape[1:], density=0.4, seed=seed)
    images[2] = 0  # no events at all (not first: the first image after reset must be real)
    images[1] = 255  # every pixel fires at the largest magnitude
    return images


@pytest.mark.parametrize("pause", [False, True], ids=["no-pause", "pause"])
@pytest.mark.parametrize("sizes, lanes, shape, zeros", NETWORKS)
def test_random_networks_icarus(random_export, tmp_path, sizes, lanes, shape, zeros, pause):
    export = random_export(sizes, lanes, input_shape=shape, seed=lanes + len(sizes),
                           weight_zeros=zeros)
    p = 0.3 if pause else 0.0
    report = runner.run(export, _images(shape, lanes), tmp_path, sim="icarus", idle=p,
                        stall=p, seed=lanes)
    assert report["mismatches"] == 0 and report["checked"] == 8


def test_maximum_accumulator_values(tmp_path):
    # neuron 0 has every weight +1, neuron 1 every weight -1: with all pixels at 255 their
    # accumulators reach +M and -M, the widths the export derived from the fan-in
    from gxnor.export.exporter import export_run
    from gxnor.model import checkpoint
    from gxnor.model.random_net import random_net

    net = random_net([4, 3], input_shape=(1, 4, 4), seed=11)
    net.blocks[0].layer.state[0] = 2
    net.blocks[0].layer.state[1] = 0
    checkpoint.save(net, tmp_path / "run" / "checkpoint.pt")
    export = export_run(tmp_path / "run", tmp_path / "export", lanes=4)
    images = np.full((2, 4, 4), 255, np.uint8)
    res = golden.Network(export).run(images)
    m = golden.Network(export).layers[0].spec["acc_max_abs"]
    assert res.acc[0][0, 0] == m and res.acc[0][0, 1] == -m
    report = runner.run(export, images, tmp_path / "sim", sim="icarus")
    assert report["mismatches"] == 0


def test_random_network_verilator(random_export, tmp_path):
    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=5)
    report = runner.run(export, _images((1, 4, 4), 5), tmp_path, sim="verilator", idle=0.3,
                        stall=0.3)
    assert report["mismatches"] == 0 and report["checked"] == 8


def test_mutation_is_caught(random_export, tmp_path):
    """One flipped XNOR sign in the DUT's weight ROM must fail the bench (and pytest)."""
    export = random_export([6, 3], 2, input_shape=(1, 3, 3), seed=3, weight_zeros=0.0)
    net = golden.Network(export)
    images = np.full((2, 3, 3), 200, np.uint8)
    hidden = net.run(images).out[-1][0]
    i = int(np.flatnonzero(hidden)[0])  # an input of the last layer that fires
    spec = AcceleratorSpec.from_export(net)
    last = spec.layers[-1]
    words = list(last.words)
    words[i] ^= 0b10  # lane 0 = class 0: flip the sign bit of its (nonzero) weight
    broken = dataclasses.replace(spec, layers=(*spec.layers[:-1],
                                               dataclasses.replace(last, words=tuple(words))))
    vdir = tmp_path / "broken"
    vdir.mkdir()
    verilog = vdir / "gxnor_accel.v"
    verilog.write_text(rtl.verilog_text(broken, "gxnor_accel"))
    with pytest.raises(runner.SimulationFailed, match=r"(?s)1 of 1 tests failed\n.*scores = "):
        runner.run(export, images, tmp_path / "sim", sim="icarus", verilog=verilog)
    # and the unbroken design passes on the same images
    assert runner.run(export, images, tmp_path / "ok", sim="icarus")["mismatches"] == 0


@pytest.mark.mnist
@pytest.mark.slow
def test_trained_mnist_net_icarus(mnist_trained_export, mnist_path, tmp_path):
    from gxnor.model.data import load_mnist

    ds = load_mnist(mnist_path, download_missing=False)
    report = runner.run(mnist_trained_export, ds.test.images[:10], tmp_path, sim="icarus",
                        idle=0.05, stall=0.2)
    assert report["mismatches"] == 0 and report["checked"] == 10


# the layer pipeline in cocotb: (layers, input shape, folds (lanes, ports, rate), input
# ports): an MLP with widths off the lane grid and a 1-neuron layer, ports above the events;
# a CNN (kernel 3 at a whole row a token, pool 2 on an odd map, channels off the lanes)
PIPELINES = [
    ([9, 1, 3], (1, 4, 4), [(4, 2, 2), (1, 4, 1), (2, 1, 1)], 2),
    ([("conv", 3, 3), ("pool", 2), 5], (1, 9, 9), [(2, 3, 1), (5, 1, 1)], 1),
]


def _pipeline(random_export, case):
    from gxnor.hw.spec import PipelineSpec

    layers, shape, folds, ports = PIPELINES[case]
    export = random_export(layers, 4, input_shape=shape, seed=20 + case)
    spec = PipelineSpec.from_export(golden.Network(export).export, folds, ports, 3)
    return export, spec, _images(shape, case)


@pytest.mark.parametrize("pause", [False, True], ids=["no-pause", "pause"])
@pytest.mark.parametrize("case", range(len(PIPELINES)))
def test_pipeline_icarus(random_export, tmp_path, case, pause):
    """Several images in flight, an all-black and an all-white image, back-pressure at the
    output while the pipeline is full (pause): golden-exact; without pauses the latency the
    pipeline reports and the beats and results counted from outside equal the cycle model."""
    export, spec, images = _pipeline(random_export, case)
    p = 0.3 if pause else 0.0
    report = runner.run(export, images, tmp_path, sim="icarus", idle=p, stall=p, seed=case,
                        pipeline=spec)
    assert report["mismatches"] == 0 and report["checked"] == len(images)


def test_pipeline_cycle_error_is_caught(random_export, tmp_path):
    """The bench checks the cycles counted from outside: the same pipeline with a larger
    serializer rate in layer 0 computes the same classes at other times, and must fail
    against the spec it claims to be."""
    from gxnor.hw.spec import Fold

    export, spec, images = _pipeline(random_export, 0)
    other = dataclasses.replace(spec, folds=(Fold(4, 2, 1), *spec.folds[1:]))
    vdir = tmp_path / "other"
    vdir.mkdir()
    verilog = vdir / "gxnor_accel.v"
    verilog.write_text(rtl.verilog_text(other, "gxnor_accel"))
    with pytest.raises(runner.SimulationFailed, match=r"(?s)1 of 1 tests failed\n.*model "):
        runner.run(export, images, tmp_path / "sim", sim="icarus", verilog=verilog,
                   pipeline=spec)


def test_pipeline_verilator(random_export, tmp_path):
    export, spec, images = _pipeline(random_export, 1)
    report = runner.run(export, images, tmp_path, sim="verilator", pipeline=spec)
    assert report["mismatches"] == 0 and report["checked"] == len(images)
