
import numpy as np
import pytest

from gxnor.model.random_net import random_images
from gxnor.sim import cycles, golden


def test_event_statistics(random_export):
    net = golden.Network(random_export([9, 5, 4], 4))
    images = random_images(50, (4, 4), density=0.3, seed=1)
    images[0] = 0
    res = net.run(images)
    assert res.events[0].tolist() == (images.reshape(50, -1) != 0).sum(1).tolist()
    assert res.events[1].tolist() == (res.out[0] != 0).sum(1).tolist()
    assert res.events[0][0] == 0 and res.gate_open[0][0] == 0
    # gate-open operations counted by brute force for one image
    x = images[3].reshape(-1)
    w = net.layers[0].weights
    assert res.gate_open[0][3] == sum(int(x[i] != 0) * int(w[j, i] != 0)
                                      for j in range(w.shape[0]) for i in range(w.shape[1]))
    assert res.skipped[0][3] == w.size - res.gate_open[0][3]


def test_all_zero_image_gives_constant_answer(random_export):
    net = golden.Network(random_export([6, 3], 2))
    res = net.run(np.zeros((2, 4, 4), np.uint8))
    assert np.all(res.acc[0] == 0) and res.classes[0] == res.classes[1]


def test_rejects_wrong_image_shape(random_export):
    net = golden.Network(random_export([3, 2], 2))
    with pytest.raises(ValueError, match=r"do not match the network's input"):
        net.run(np.zeros((1, 5, 5), np.uint8))


def test_cycle_model_formula_by_hand():
    # 5 outputs on 2 lanes: groups of 2, 2, 1. With E = 0: max(1, 0) + max(1, 2) + max(1, 2)
    assert cycles.group_sizes(5, 2) == [2, 2, 1]
    base = cycles.SETUP + cycles.PIPELINE + 1 + cycles.SERIALIZER_LATENCY + cycles.DRAIN
    assert cycles.layer_cycles(0, 5, 2) == base + 1 + 2 + 2
    assert cycles.layer_cycles(10, 5, 2) == base + 3 * 11
    np.testing.assert_array_equal(cycles.layer_cycles(np.array([0, 10]), 5, 2),
                                  [base + 5, base + 33])
    assert cycles.dense_cycles([16, 5], [5, 3], 2) == (cycles.layer_cycles(16, 5, 2)
                                                       + cycles.layer_cycles(5, 3, 2))


def test_event_bound_is_a_lower_bound():
    e = np.arange(0, 300)
    assert np.all(cycles.layer_cycles(e, 256, 8) >= cycles.event_bound(e, 256, 8))
