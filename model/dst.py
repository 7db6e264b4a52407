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
"""

from __future__ import annotations

import torch

from .quant import state_step
from .zn import num_states

PROPOSALS = ("norm", "adam")


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
            dw = self.propose(i, w.grad)
            new_state = transition(layer.state, dw, layer.n_bits, layer.h, self.m, self.generator)
            moved += int((new_state != layer.state).sum())
            layer.state.copy_(new_state)
            layer.weight_in_use = None
        self.transitions += moved
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

