import math

import numpy as np
import pytest
import torch

from gxnor.model import dst, quant, zn
from gxnor.model.layers import DiscreteLinear


@pytest.mark.parametrize("n_bits", [0, 1, 2])
@pytest.mark.parametrize("proposal", ["norm", "adam"])
def test_states_stay_in_z_n(n_bits, proposal):
    torch.manual_seed(0)
    layer = DiscreteLinear(20, 30, n_bits=n_bits)
    opt = dst.DST([layer], lr=0.7, proposal=proposal, generator=torch.Generator().manual_seed(1))
    for _ in range(30):
        x = torch.randn(8, 20)
        layer(x).pow(3).sum().backward()
        opt.step()
        st = layer.state
        assert st.dtype == torch.int8
        assert int(st.min()) >= 0 and int(st.max()) <= zn.num_states(n_bits) - 1
    assert opt.transitions > 0


def test_whole_steps_then_probabilistic_remainder():
    # dW = 2.25 steps up: exactly 2 whole steps, a third with probability tanh(m * 0.25)
    n = 200_000
    state = torch.zeros(n, dtype=torch.int8)  # state 0 of Z_2 (5 states)
    step = quant.state_step(2, 1.0)
    m = 3.0
    gen = torch.Generator().manual_seed(1234)
    new = dst.transition(state, torch.full((n,), 2.25 * step), 2, 1.0, m, gen)
    moved = new.to(torch.int64)
    assert set(moved.unique().tolist()) == {2, 3}
    p_hat = float((moved == 3).double().mean())
    p = math.tanh(m * 0.25)
    assert abs(p_hat - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_negative_updates_and_clipping():
    n = 100_000
    state = torch.full((n,), 1, dtype=torch.int8)  # ternary 0
    gen = torch.Generator().manual_seed(7)
    new = dst.transition(state, torch.full((n,), -0.3), 1, 1.0, 3.0, gen)
    p_hat = float((new == 0).double().mean())
    assert set(new.unique().tolist()) == {0, 1}
    assert abs(p_hat - math.tanh(0.9)) < 0.01
    clipped = dst.transition(state, torch.full((n,), 5.0), 1, 1.0, 3.0, gen)
    assert set(clipped.unique().tolist()) == {2}


def test_norm_proposal_keeps_no_per_weight_float_state():
    layer = DiscreteLinear(10, 10)
    opt = dst.DST([layer], lr=0.1, proposal="norm")
    layer(torch.randn(4, 10)).sum().backward()
    opt.step()
    assert opt.state_bytes() == 0
    floats = [t for t in list(layer.parameters()) + list(layer.buffers())
              if t.is_floating_point() and t.shape == layer.state.shape]
    assert floats == []
    assert layer.weight_in_use is None  # the transient weight is dropped after the step


def test_adam_proposal_keeps_two_moments():
    layer = DiscreteLinear(10, 10)
    opt = dst.DST([layer], lr=0.1, proposal="adam")
    assert opt.state_bytes() == 2 * 4 * 100


def test_bad_proposal():
    msg = r"^proposal must be one of \('norm', 'adam'\), got 'sgd'$"
    with pytest.raises(ValueError, match=msg):
        dst.DST([], lr=0.1, proposal="sgd")


def test_determinism():
    def run():
        torch.manual_seed(0)
        layer = DiscreteLinear(16, 8)
        opt = dst.DST([layer], 0.3, generator=torch.Generator().manual_seed(5))
        for _ in range(5):
            layer(torch.ones(2, 16)).sum().backward()
            opt.step()
        return layer.state.clone()

    assert torch.equal(run(), run())
    assert np.any(run().numpy() != 1)
