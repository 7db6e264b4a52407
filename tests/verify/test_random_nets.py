"""Differential testing: a few dozen random networks (depths 1-4, widths 1-300, 1-64 lanes,
all-zero / all-nonzero weight columns, all-zero and saturating images) through the RTL
against the golden model and the cycle model. `make bench` runs a thousand."""

import pytest

from gxnor.verify import random_nets

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_thirty_random_networks(tmp_path):
    report = random_nets.run(list(range(1000, 1030)), tmp_path, per_build=30, images=8,
                             log=lambda s: None)
    assert report["failing"] == [], report["failing"]
    assert report["networks"] == 30 and report["images"] == 30 * 8


def test_random_layer_pipelines(tmp_path):
    """The same kind of networks as layer pipelines with random folds per layer."""
    report = random_nets.run(list(range(2000, 2012)), tmp_path, per_build=12, images=8,
                             schedule="pipelined", log=lambda s: None)
    assert report["failing"] == [], report["failing"]
    assert report["networks"] == 12 and report["images"] == 12 * 8


def test_random_cnns(tmp_path):
    """Random CNNs (1-2 conv layers, kernels 1-5, pooling 1-3, 1-2 input channels) as layer
    pipelines, against the golden model and the cycle model."""
    report = random_nets.run(list(range(3000, 3012)), tmp_path, per_build=12, images=6,
                             schedule="cnn", log=lambda s: None)
    assert report["failing"] == [], report["failing"]
    assert report["networks"] == 12 and report["images"] == 12 * 6


def test_cnn_cases_cover_the_corners():
    cases = [random_nets.draw_cnn(seed) for seed in range(200)]
    convs = [ly for c in cases for ly in c.convs if ly[0] == "conv"]
    assert {ly[2] for ly in convs} == {1, 2, 3, 4, 5}
    assert {ly[1] for c in cases for ly in c.convs if ly[0] == "pool"} == {2, 3}
    assert {c.input_shape[0] for c in cases} == {1, 2}
    assert any(len([ly for ly in c.convs if ly[0] == "conv"]) == 2 for c in cases)


def test_pipeline_folds_cover_the_corners():
    cases = [random_nets.draw(seed, schedule="pipelined") for seed in range(200)]
    folds = [f for c in cases for f in c.folds]
    assert {f[1] for f in folds} == set(random_nets.PORTS)
    assert {f[2] for f in folds} == {1, 2, 4, 8}
    assert {c.input_ports for c in cases} == set(random_nets.INPUT_PORTS)
    assert {c.buffers for c in cases} == {2, 3, 4}
    assert all(c.folds[-1][2] == 1 for c in cases)  # the scores: one class per cycle
    assert random_nets.draw(7, schedule="pipelined").sizes == random_nets.draw(7).sizes


def test_cases_cover_the_corners():
    cases = [random_nets.draw(seed) for seed in range(400)]
    widths = [w for c in cases for w in c.sizes[:-1]]
    assert 1 in widths and 7 in widths and max(widths) > 250
    assert {len(c.sizes) for c in cases} == {1, 2, 3, 4}
    assert {c.lanes for c in cases} == set(random_nets.LANES)
    assert any(c.weight_zeros == 0.0 for c in cases) and any(c.weight_zeros == 1.0
                                                              for c in cases)
    assert any(w % c.lanes for c in cases for w in c.sizes)  # off the lane grid
    assert random_nets.draw(5) == random_nets.draw(5)  # a seed replays its network
