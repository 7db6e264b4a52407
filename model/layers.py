"""Discrete layers: the weights *are* integer states of Z_N; no float copy persists.

``DiscreteLinear`` / ``DiscreteConv2d`` keep an ``int8`` buffer ``state`` of the weight's shape
(state index n in 0..2^N, paper eq. 1). Each forward pass builds the real weights
w = n * step - H on the fly; in training mode that transient tensor is kept as ``weight_in_use``
so that the DST optimizer can read its gradient after ``backward()``. Between steps only the
integer states (1 byte per weight) exist.

``LatentLinear`` / ``LatentConv2d`` are the STE baseline (BinaryConnect style): fp32 hidden
weights, quantized to the nearest state in the forward pass, clipped identity backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .quant import LatentQuantFn, nearest_state, state_values
from .zn import num_states


class _DiscreteMixin:
    """Shared by the discrete layers: integer states, their values, and the transient weight."""

    n_bits: int
    h: float

    def _init_weights(self, shape: tuple[int, ...], fan_in: int) -> None:
        # Start near zero like a variance-scaled init: mostly the middle states, so that the
        # initial pre-activations are not huge; DST moves them from there.
        std = min(1.0, 1.5 / math.sqrt(1.0 + fan_in / 64.0))
        w = torch.randn(shape) * std * self.h
        self.register_buffer("state", nearest_state(w, self.n_bits, self.h))
        self.weight_in_use = None

    def weight_values(self) -> torch.Tensor:
        return state_values(self.states(), self.n_bits, self.h)

    def _weight_for_forward(self) -> torch.Tensor:
        w = self.weight_values()
        if self.training and torch.is_grad_enabled():
            w.requires_grad_(True)
            self.weight_in_use = w
        return w

    #: set by an optimizer that keeps its own per-weight bits in the spare high bits of the
    #: state's byte (DST's ``packed`` proposal): the state is then the low ``state_bits``
    state_bits: int | None = None

    def states(self) -> torch.Tensor:
        """Integer state indices (int8), the layer's only weight storage."""
        if self.state_bits is None:
            return self.state
        return self.state & ((1 << self.state_bits) - 1)


def _check(n_bits: int, h: float) -> None:
    num_states(n_bits)  # validates N
    if not h > 0:
        raise ValueError(f"H must be > 0, got {h!r}")


class _LinearShape(nn.Module):
    """y = x W^T (no bias); the weight storage comes from the mixin's ``_init_weights``."""

    def __init__(self, in_features: int, out_features: int, n_bits: int = 1, h: float = 1.0):
        super().__init__()
        _check(n_bits, h)
        self.in_features, self.out_features, self.n_bits, self.h = (
            in_features, out_features, n_bits, h)
        self._init_weights((out_features, in_features), in_features)

    def forward(self, x):
        return F.linear(x, self._weight_for_forward())

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, N={self.n_bits}, H={self.h}"


class _ConvShape(nn.Module):
    """y = x * W (no bias, stride 1, zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 n_bits: int = 1, h: float = 1.0):
        super().__init__()
        _check(n_bits, h)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding, self.n_bits, self.h = kernel_size, padding, n_bits, h
        self._init_weights((out_channels, in_channels, kernel_size, kernel_size),
                           in_channels * kernel_size * kernel_size)

    def forward(self, x):
        return F.conv2d(x, self._weight_for_forward(), padding=self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, "
                f"pad={self.padding}, N={self.n_bits}, H={self.h}")


class _LatentMixin:
    """STE baseline: fp32 hidden weights quantized to Z_N in the forward pass."""

    def _init_weights(self, shape, fan_in):
        scale = min(1.0, 1.5 / math.sqrt(1.0 + fan_in / 64.0))
        self.latent = nn.Parameter(torch.empty(shape).uniform_(-self.h, self.h) * scale)

    def _weight_for_forward(self) -> torch.Tensor:
        return LatentQuantFn.apply(self.latent, self.n_bits, self.h)

    def states(self) -> torch.Tensor:
        return nearest_state(self.latent.detach(), self.n_bits, self.h)


class DiscreteLinear(_DiscreteMixin, _LinearShape):
    """y = x W^T with W in Z_N (no bias). GXNOR-Net section 3.2; trained by DST."""


class DiscreteConv2d(_DiscreteMixin, _ConvShape):
    """y = x * W with W in Z_N (no bias, stride 1, 'valid' or zero padding)."""


class LatentLinear(_LatentMixin, _LinearShape):
    """STE baseline linear layer: y = x q(W_latent)^T, dq/dW = 1 on |W| <= H."""


class LatentConv2d(_LatentMixin, _ConvShape):
    """STE baseline convolution (no bias)."""
