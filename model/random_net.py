"""Random discrete networks with realistic batch-norm statistics, for tests and the sim suite.

A random network goes through the same path as a trained one: checkpoint -> export -> golden
model -> RTL. Weight sparsity and the sign of the batch-norm scale (including exact zeros, the
constant-output case) are controlled, so every branch of the threshold folding is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import checkpoint, nets, zn


def random_net(sizes: list[int], input_shape=(1, 4, 4), seed: int = 0,
               weight_zeros: float = 0.5, r: float = 0.5, n_bits: int = 1,
               negative_scale: float = 0.25, zero_scale: float = 0.05,
               special_columns: float = 0.0, act_bits: int = 1) -> nets.GxnorNet:
    """A GxnorNet of the layers ``sizes`` (last = classes) with random states and BN stats:
    an int is an fc layer of that many outputs, a tuple a layer spec of :class:`NetConfig`
    (``("conv", channels, kernel)``, ``("pool", size)``).

    ``special_columns``: the fraction of each layer's input columns whose weights are all zero,
    and the same fraction whose weights are all nonzero. ``act_bits``: 1 ternary, 0 binary
    activations."""
    rng = np.random.default_rng(seed)
    layers = [tuple(n) if isinstance(n, (tuple, list)) else ("fc", n) for n in sizes]
    cfg = nets.NetConfig(f"random-{seed}", "none", layers, n_bits=n_bits, r=r,
                         act_bits=act_bits)
    net = nets.build(cfg, tuple(input_shape))
    n_states = zn.num_states(n_bits)
    zero = zn.zero_state(n_bits)
    max_in = 255.0
    for i, block in enumerate(net.blocks):
        layer = block.layer
        shape = tuple(layer.state.shape)
        st = rng.integers(0, n_states, size=shape)
        if zero is not None:
            st = np.where(rng.random(shape) < weight_zeros, zero, st)
            kind = rng.random(shape[1])  # per input column: all zero, all nonzero, or as drawn
            nonzero = np.where(rng.random(shape) < 0.5, 0, n_states - 1)
            st[:, kind < special_columns] = zero
            dense = (kind >= special_columns) & (kind < 2 * special_columns)
            st[:, dense] = nonzero[:, dense]
        layer.state.copy_(torch.from_numpy(st.astype(np.int8)))
        fan_in = int(np.prod(shape[1:]))  # conv: channels x kernel x kernel
        scale = max_in if i == 0 else 1.0
        std = np.sqrt(fan_in * (1 - weight_zeros) * 0.5) * scale / 2 + 1e-3
        n = shape[0]
        gamma = rng.uniform(0.3, 2.0, n) * np.where(rng.random(n) < negative_scale, -1, 1)
        gamma = np.where(rng.random(n) < zero_scale, 0.0, gamma)
        bn = block.bn
        bn.weight.data = torch.tensor(gamma, dtype=torch.float32)
        bn.bias.data = torch.tensor(rng.uniform(-1, 1, n), dtype=torch.float32)
        bn.running_mean.copy_(torch.tensor(rng.normal(0, std / 2, n), dtype=torch.float32))
        bn.running_var.copy_(torch.tensor((std * rng.uniform(0.5, 2, n)) ** 2,
                                          dtype=torch.float32))
        max_in = 1.0
    net.eval()
    return net


def save_random(path: Path, sizes: list[int], **kwargs) -> Path:
    net = random_net(sizes, **kwargs)
    return checkpoint.save(net, Path(path) / "checkpoint.pt")


def random_images(n: int, shape, density: float = 0.3, seed: int = 0) -> np.ndarray:
    """uint8 images with a fraction ``density`` of nonzero pixels."""
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 256, size=(n, *shape))
    return np.where(rng.random((n, *shape)) < density, img, 0).astype(np.uint8)
