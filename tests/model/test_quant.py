import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gxnor.model import quant, zn


@pytest.mark.parametrize("n_bits, expected", [
    (0, [-1.0, 1.0]), (1, [-1.0, 0.0, 1.0]), (2, [-1.0, -0.5, 0.0, 0.5, 1.0])])
def test_state_space(n_bits, expected):
    n = zn.num_states(n_bits)
    values = quant.state_values(torch.arange(n), n_bits, 1.0)
    assert values.tolist() == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-4, 4, allow_nan=False), min_size=1, max_size=64),
       st.floats(0.05, 2.0), st.integers(0, 2))
def test_multistep_outputs_lie_in_the_level_set(xs, r, bits):
    q = quant.MultiStep(bits, r=r, a=0.5)
    y = q(torch.tensor(xs))
    k = 2**bits
    levels = {-1 + 2 * j / k for j in range(k + 1)}
    assert set(np.round(y.numpy(), 6).tolist()) <= {round(v, 6) for v in levels}


def test_ternary_thresholds_exact_at_the_boundary():
    r = 0.5
    x = torch.tensor([-0.5000001, -0.5, -0.4999999, 0.0, 0.4999999, 0.5, 0.5000001],
                     dtype=torch.float64)
    y = quant.MultiStep(1, r=r)(x)
    assert y.tolist() == [-1, 0, 0, 0, 0, 0, 1]  # strict: +1 only above r, -1 only below -r


def _window_reference(x, thresholds, a, window, jump):
    d = np.zeros_like(x)
    for t in thresholds:
        dist = np.abs(x - t)
        if window == "rect":
            d += (dist <= a) * jump / (2 * a)
        else:
            d += np.clip(1 - dist / a, 0, None) * jump / a
    return d


@pytest.mark.parametrize("window", ["rect", "tri"])
@pytest.mark.parametrize("bits, r, a", [(1, 0.5, 0.5), (1, 1.0, 0.25), (0, 0.0, 1.0),
                                        (2, 0.5, 0.3)])
def test_backward_equals_numpy_window(window, bits, r, a):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64, requires_grad=True)
    q = quant.MultiStep(bits, r=r, a=a, window=window)
    g = torch.randn(601, dtype=torch.float64)
    q(x).backward(g)
    ref = _window_reference(x.detach().numpy(), q.thresholds, a, window, 2 / 2**bits)
    np.testing.assert_allclose(x.grad.numpy(), g.numpy() * ref, rtol=1e-12)


def test_window_integrates_to_the_jump():
    x = torch.linspace(-3, 3, 600001, dtype=torch.float64, requires_grad=True)
    quant.MultiStep(1, r=0.5, a=0.25)(x).sum().backward()
    area = float(x.grad.sum()) * (6 / 600000)
    assert area == pytest.approx(2.0, rel=1e-3)  # two steps of height 1


def test_bad_window_parameters():
    with pytest.raises(ValueError, match=r"^window must be one of"):
        quant.MultiStep(window="gauss")
    with pytest.raises(ValueError, match=r"^window half width a must be > 0"):
        quant.MultiStep(a=0)


def test_latent_quantizer_rounds_and_clips_gradient():
    w = torch.tensor([-1.7, -0.6, -0.4, 0.2, 0.51, 1.3], requires_grad=True)
    y = quant.LatentQuantFn.apply(w, 1, 1.0)
    assert y.tolist() == [-1, -1, 0, 0, 1, 1]
    y.sum().backward()
    assert w.grad.tolist() == [0, 1, 1, 1, 1, 0]
