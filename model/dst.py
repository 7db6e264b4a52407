"""Discrete state transition (DST) optimizer: updates integer weight states in place.

GXNOR-Net section 3.3. For each weight, a real update dW is proposed from the gradient; it
is split into kappa = trunc(dW / step) whole state steps and a remainder nu; the weight moves
kappa steps plus one more step in the direction of dW with probability tanh(m |nu| / step),
then is clipped to [-H, H] (state index 0 .. 2^N).

Proposals:

* ``"norm"``: dW = -lr * g / rms(g), the rms taken over the layer. Needs no per-weight
  floating-point state: the only per-weight memory between steps is the int8 state
  (1 byte/weight). The gradient itself is a transient of the backward pass.
* ``"adam"``: dW is the Adam step (as the reference Theano code does), which keeps two fp32
  moments per weight (1 + 8 bytes/weight).
* ``"packed"``: one byte per weight, all of it: the weight's state in the low bits of its
  ``int8`` (2 bits for ternary) and, in the spare high bits (6 for ternary), a momentum of the
  layer-normalised gradient, a signed fixed-point number in steps of ``PACKED_RANGE / 2^5``
  stored with stochastic rounding (unbiased). The update follows the sign of a blend of
  momentum and gradient (as in Lion, Chen et al. 2023): dW = -lr * sign(b1 m + (1 - b1) g/rms),
  then m <- b2 m + (1 - b2) g/rms. A per-weight sign step moves every weight at the same speed
  whatever its gradient's size, which is what Adam's per-weight normalisation buys, without a
  per-weight second moment.
"""

from __future__ import annotations

import torch

from .quant import state_step
from .zn import num_states

PROPOSALS = ("norm", "adam", "packed")
#: the packed proposal's momentum covers [-PACKED_RANGE, PACKED_RANGE) in layer-rms units
PACKED_RANGE = 2.0
PACKED_BETAS = (0.9, 0.99)


class DST:
    """Discrete state transition over the discrete layers of a network.

    Parameters
    ----------
    layers: the DiscreteLinear / DiscreteConv2d modules whose ``state`` it updates.
    lr: proposal scale (in units of H per step).
    m: non-linearity of the transition probability tanh(m |nu| / step); the reference uses 3.
    proposal: "norm" (no per-weight fp state) or "adam".
    generator: torch.Generator for the Bernoulli draws (determinism).
    """

    def __init__(self, layers, lr: float, m: float = 3.0, proposal: str = "norm",
                 betas=(0.9, 0.999), eps: float = 1e-8, generator: torch.Generator | None = None):
        if proposal not in PROPOSALS:
            raise ValueError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.layers = list(layers)
        self.lr, self.m, self.proposal = lr, m, proposal
        self.betas, self.eps = betas, eps
        self.generator = generator
        self.t = 0
        self.moments: list[tuple[torch.Tensor, torch.Tensor]] = []
        if proposal == "packed":
            for layer in self.layers:
                bits = max(1, (num_states(layer.n_bits) - 1).bit_length())
                if 8 - bits < 4:
                    raise ValueError(f"the packed proposal needs >= 4 spare bits of the "
                                     f"weight's byte; Z_{layer.n_bits} takes {bits}")
                layer.state_bits = bits  # the layer reads its state from the low bits
        if proposal == "adam":
            self.moments = [(torch.zeros_like(layer.state, dtype=torch.float32),
                             torch.zeros_like(layer.state, dtype=torch.float32))
                            for layer in self.layers]
        self.transitions = 0  # weights whose state changed, summed over steps

    def propose(self, i: int, grad: torch.Tensor) -> torch.Tensor:
        """The real-valued update dW for layer i."""
        if self.proposal == "norm":
            rms = grad.pow(2).mean().sqrt()
            return grad * (-self.lr / (rms + self.eps))
        m1, m2 = self.moments[i]
        b1, b2 = self.betas
        m1.mul_(b1).add_(grad, alpha=1 - b1)
        m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        return (m1 / c1) / ((m2 / c2).sqrt() + self.eps) * (-self.lr)

    @torch.no_grad()
    def step(self) -> int:
        """Apply one DST step to every layer; returns the number of weights that moved."""
        self.t += 1
        moved = 0
        for i, layer in enumerate(self.layers):
            w = layer.weight_in_use
            if w is None or w.grad is None:
                continue
            if self.proposal == "packed":
                moved += self._packed_step(layer, w.grad)
                layer.weight_in_use = None
                continue
            dw = self.propose(i, w.grad)
            new_state = transition(layer.state, dw, layer.n_bits, layer.h, self.m, self.generator)
            moved += int((new_state != layer.state).sum())
            layer.state.copy_(new_state)
            layer.weight_in_use = None
        self.transitions += moved
        return moved

    def _packed_step(self, layer, grad: torch.Tensor) -> int:
        """The ``packed`` proposal on one layer: unpack state and momentum from the byte,
        step, pack them again."""
        bits = layer.state_bits
        mbits = 8 - bits
        top = 1 << (mbits - 1)
        q = PACKED_RANGE / top  # momentum grid step
        state = layer.states()  # the low bits
        m = (layer.state >> bits).to(torch.float32) * q  # arithmetic shift: the sign stays
        g = grad / (grad.pow(2).mean().sqrt() + self.eps)
        b1, b2 = PACKED_BETAS
        dw = torch.sign(m * b1 + g * (1 - b1)) * (-self.lr)
        m = m * b2 + g * (1 - b2)
        noise = torch.rand(m.shape, generator=self.generator, device=m.device)
        mq = torch.floor(m / q + noise).clamp_(-top, top - 1).to(torch.int8)
        new_state = transition(state, dw, layer.n_bits, layer.h, self.m, self.generator)
        moved = int((new_state != state).sum())
        layer.state.copy_(new_state | (mq << bits))
        return moved

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.weight_in_use = None

    def state_bytes(self) -> int:
        """Bytes of per-weight state kept between steps (moments, if any)."""
        return sum(t.numel() * t.element_size() for pair in self.moments for t in pair)

    def set_lr(self, lr: float) -> None:
        self.lr = lr


def transition(state: torch.Tensor, dw: torch.Tensor, n_bits: int, h: float, m: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """New integer states after a proposed real update ``dw`` (GXNOR-Net eq. 11-13)."""
    step = state_step(n_bits, h)
    ratio = dw / step
    kappa = torch.trunc(ratio)
    nu = ratio - kappa  # remainder in units of one step, |nu| < 1
    prob = torch.tanh(m * nu.abs())
    jump = torch.bernoulli(prob, generator=generator) * torch.sign(nu)
    moved = state.to(torch.int32) + (kappa + jump).to(torch.int32)
    return moved.clamp_(0, num_states(n_bits) - 1).to(state.dtype)

