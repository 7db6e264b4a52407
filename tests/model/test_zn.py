"""The discrete weight space Z_N (gxnor.model.zn)."""

import numpy as np
import pytest

from gxnor.model import zn


def test_num_states_rejects_bad_n():
    with pytest.raises(ValueError, match=r"^N must be an integer in 0\.\.6, got -1$"):
        zn.num_states(-1)


@pytest.mark.parametrize("n_bits", [0, 1, 2, 3])
def test_states_integers_and_zero(n_bits):
    w = zn.weight_integers(np.arange(zn.num_states(n_bits)), n_bits)
    assert w[0] == -w[-1] and np.all(np.diff(w) > 0)  # symmetric, increasing
    z = zn.zero_state(n_bits)
    assert (z is None) == (n_bits == 0)
    if z is not None:
        assert w[z] == 0
