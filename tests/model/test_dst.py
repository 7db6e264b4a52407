import math

import numpy as np
import pytest
import torch

from gxnor.model import dst, quant, zn
from gxnor.model.layers import DiscreteLinear


@pytest.mark.parametrize("n_bits", [0, 1, 2])
@pytest.mark.parametrize("proposal", ["norm", "adam", "packed"])
def test_states_stay_in_z_n(n_bits, proposal):
    torch.manual_seed(0)
    layer = DiscreteLinear(20, 30, n_bits=n_bits)
    opt = dst.DST([layer], lr=0.7, proposal=proposal, generator=torch.Generator().manual_seed(1))
    for _ in range(30):
        x = torch.randn(8, 20)
        layer(x).pow(3).sum().backward()
        opt.step()
        st = layer.states()
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
    msg = r"^proposal must be one of \('norm', 'adam', 'packed'\), got 'sgd'$"
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


def test_packed_proposal_keeps_state_and_momentum_in_one_byte():
    """The byte: the state in the low bits (what the layer computes with), a signed momentum
    in the high bits that follows the gradient's sign; nothing else per weight."""
    torch.manual_seed(0)
    layer = DiscreteLinear(40, 50, n_bits=1)
    gen = torch.Generator().manual_seed(3)
    opt = dst.DST([layer], lr=0.3, proposal="packed", generator=gen)
    target = torch.randn(50, 40).sign()  # push every weight towards a fixed sign
    start = layer.states().clone()
    for _ in range(60):
        x = torch.randn(16, 40)
        (-(layer(x) * (x @ target.T)).sum()).backward()
        opt.step()
    packed, st = layer.state, layer.states()
    assert packed.dtype == torch.int8 and opt.state_bytes() == 0
    assert torch.equal(st, packed & 3) and int(st.max()) <= 2
    mom = packed >> 2  # arithmetic shift keeps the sign
    # the momentum is that of the gradient, dL/dw = -target * E[x^2]
    agree = (torch.sign(mom.float()) == -target).float().mean()
    assert agree > 0.9
    # and the weights followed it: most states moved towards +1 where target > 0
    w = zn.weight_integers(st.numpy(), 1)
    assert np.mean(np.sign(w) == target.numpy()) > 0.8
    assert not torch.equal(start, st)
    assert torch.equal(layer.weight_values(), quant.state_values(st, 1, 1.0))


def test_packed_proposal_checkpoints_clean_states(tmp_path):
    from gxnor.model import checkpoint, nets

    cfg = nets.NetConfig("t", "none", [("fc", 6), ("fc", 3)], proposal="packed")
    net = nets.build(cfg, (1, 2, 2))
    opt = dst.DST(net.discrete_layers(), 0.5, proposal="packed",
                  generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        scores = net(torch.rand(8, 1, 2, 2) * 255)
        torch.nn.functional.cross_entropy(scores, torch.arange(8) % 3).backward()
        opt.step()
    assert any(int((ly.state >> 2).abs().max()) > 0 for ly in net.discrete_layers())
    checkpoint.save(net, tmp_path / "c.pt")
    back, payload = checkpoint.load(tmp_path / "c.pt")
    for a, b in zip(net.discrete_layers(), back.discrete_layers(), strict=True):
        assert torch.equal(a.states(), b.state)
