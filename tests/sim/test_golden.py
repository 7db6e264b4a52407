
import numpy as np
import pytest

from gxnor.model.random_net import random_images
from gxnor.sim import golden


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
