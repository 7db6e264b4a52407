"""The cycle model (gxnor.hw.timing)."""

import numpy as np

from gxnor.hw import timing


def test_cycle_model_formula_by_hand():
    # 5 outputs on 2 lanes: groups of 2, 2, 1. With E = 0: max(1, 0) + max(1, 2) + max(1, 2)
    assert timing.group_sizes(5, 2) == [2, 2, 1]
    base = timing.SETUP + timing.PIPELINE + 1 + timing.SERIALIZER_LATENCY + timing.DRAIN
    assert timing.layer_cycles(0, 5, 2) == base + 1 + 2 + 2
    assert timing.layer_cycles(10, 5, 2) == base + 3 * 11
    np.testing.assert_array_equal(timing.layer_cycles(np.array([0, 10]), 5, 2),
                                  [base + 5, base + 33])
    assert timing.dense_cycles([16, 5], [5, 3], 2) == (timing.layer_cycles(16, 5, 2)
                                                       + timing.layer_cycles(5, 3, 2))


def test_event_bound_is_a_lower_bound():
    e = np.arange(0, 300)
    assert np.all(timing.layer_cycles(e, 256, 8) >= timing.event_bound(e, 256, 8))
