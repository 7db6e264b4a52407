"""Quantizers: exact forward, explicit backward, one ``torch.autograd.Function`` each.

The discrete space of the paper (Deng et al., "GXNOR-Net", Neural Networks 100, 2018, eq. 1):

    Z_N = { (n / 2^(N-1) - 1) * H : n = 0 .. 2^N }

N=0 is binary {-H, H}, N=1 ternary {-H, 0, H}, N>=2 has 2^N+1 evenly spaced states. Weights
are stored as the integer state index n; :func:`state_values` maps n to the real value.

Activations use the multi-step function of the paper (section 3.1): k = 2^N_a steps (k=1
binary, k=2 ternary) at thresholds t_j, outputs -1 + 2 j / k. For ternary the thresholds are
-r and +r:  q(x) = +1 if x > r, -1 if x < -r, 0 otherwise. The derivative is approximated
around each step by a window of half width a (paper eq. 9-10): rectangular of height
jump / (2a) on |x - t_j| <= a, or triangular of peak jump / a.
"""

from __future__ import annotations

import torch
from torch import nn

from .zn import num_states


def state_step(n_bits: int, h: float = 1.0) -> float:
    """Distance between neighbouring states of Z_N: 2H / 2^N (2H for binary)."""
    return 2.0 * h / (2**n_bits if n_bits > 0 else 1)


def state_values(states: torch.Tensor, n_bits: int, h: float = 1.0) -> torch.Tensor:
    """Real value of integer state indices ``states`` in Z_N (float32)."""
    return states.to(torch.float32) * state_step(n_bits, h) - h


def nearest_state(w: torch.Tensor, n_bits: int, h: float = 1.0) -> torch.Tensor:
    """Index of the state of Z_N nearest to real ``w`` (clipped to [-H, H]), as int8."""
    step = state_step(n_bits, h)
    n = torch.round((w.clamp(-h, h) + h) / step)
    return n.clamp(0, num_states(n_bits) - 1).to(torch.int8)


def activation_thresholds(levels_bits: int, r: float) -> list[float]:
    """Step positions t_j = r (2j - 1 - k), j = 1..k, k = 2^levels_bits.

    Binary (k=1): [0]; ternary (k=2): [-r, +r]; k=4: [-3r, -r, r, 3r].
    """
    k = 2**levels_bits
    return [r * (2 * j - 1 - k) for j in range(1, k + 1)]


WINDOWS = ("rect", "tri")


class MultiStepFn(torch.autograd.Function):
    """Forward: the multi-step function. Backward: sum of windows around the steps."""

    @staticmethod
    def forward(ctx, x, thresholds: tuple[float, ...], a: float, window: str):
        ctx.save_for_backward(x)
        ctx.thresholds, ctx.a, ctx.window = thresholds, a, window
        k = len(thresholds)
        if k == 1:  # binary: +1 if x > t else -1
            return (x > thresholds[0]).to(x.dtype) * 2.0 - 1.0
        # symmetric: a positive step counts x > t, a negative one x < t (ternary: +1 if
        # x > r, -1 if x < -r, 0 on [-r, r] including both ends)
        level = torch.zeros_like(x)
        for t in thresholds:
            if t > 0:
                level += (x > t).to(x.dtype)
            else:
                level -= (x < t).to(x.dtype)
        return level * (2.0 / k)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        k, a = len(ctx.thresholds), ctx.a
        jump = 2.0 / k
        deriv = torch.zeros_like(x)
        for t in ctx.thresholds:
            d = (x - t).abs()
            if ctx.window == "rect":
                deriv += (d <= a).to(x.dtype) * (jump / (2.0 * a))
            else:
                deriv += torch.clamp(1.0 - d / a, min=0.0) * (jump / a)
        return grad_out * deriv, None, None, None


class MultiStep(nn.Module):
    """Discrete activation (ternary by default): q(x) = +1 if x > r, -1 if x < -r, else 0.

    dq/dx is approximated by a window of half width ``a`` around each step (GXNOR-Net, eq. 9).
    ``levels_bits`` = 0 gives the binary sign (step at 0), 1 ternary, >= 2 multi-level.
    """

    def __init__(self, levels_bits: int = 1, r: float = 0.5, a: float = 0.5,
                 window: str = "rect"):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        if a <= 0:
            raise ValueError(f"window half width a must be > 0, got {a!r}")
        if r < 0:
            raise ValueError(f"threshold r must be >= 0, got {r!r}")
        self.levels_bits, self.r, self.a, self.window = levels_bits, r, a, window
        self.thresholds = tuple(activation_thresholds(levels_bits, r))

    def forward(self, x):
        return MultiStepFn.apply(x, self.thresholds, self.a, self.window)

    def extra_repr(self):
        return f"levels_bits={self.levels_bits}, r={self.r}, a={self.a}, window={self.window}"


class LatentQuantFn(torch.autograd.Function):
    """STE baseline weight quantizer: nearest state of Z_N forward, clipped identity backward."""

    @staticmethod
    def forward(ctx, w, n_bits: int, h: float):
        ctx.save_for_backward(w)
        ctx.h = h
        return state_values(nearest_state(w, n_bits, h), n_bits, h)

    @staticmethod
    def backward(ctx, grad_out):
        (w,) = ctx.saved_tensors
        return grad_out * (w.abs() <= ctx.h).to(grad_out.dtype), None, None
