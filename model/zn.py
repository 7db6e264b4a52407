"""The discrete weight space Z_N of GXNOR-Net: its one definition, without torch.

Deng et al., "GXNOR-Net", Neural Networks 100, 2018, eq. 1:

    Z_N = { (n / 2^(N-1) - 1) * H : n = 0 .. 2^N }        (N >= 1),    Z_0 = { -H, +H }

A weight is stored as its state index n. N=0 is binary (2 states), N=1 ternary (3 states),
N>=2 has 2^N + 1 evenly spaced states. The hardware and the export see the *integer* weight
w = 2n - 1 (N=0) or w = n - 2^(N-1) (N>=1), whose real value is w * integer_scale(N, H).
Training (``quant``, ``dst``), the exporter and the random networks of the tests all use this
module; the golden model and the RTL see only the exporter's integers.
"""

from __future__ import annotations

import numpy as np

MAX_BITS = 6


def check_bits(n_bits) -> int:
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 0 <= n_bits <= MAX_BITS:
        raise ValueError(f"N must be an integer in 0..{MAX_BITS}, got {n_bits!r}")
    return n_bits


def num_states(n_bits: int) -> int:
    """Number of states of Z_N: 2 for N=0, 2^N + 1 otherwise."""
    return 2 if check_bits(n_bits) == 0 else 2**n_bits + 1


def zero_state(n_bits: int) -> int | None:
    """State index of the weight 0 (None for binary weights, which have no zero)."""
    return None if check_bits(n_bits) == 0 else 2 ** (n_bits - 1)


def weight_integers(states, n_bits: int) -> np.ndarray:
    """State indices n -> integer weights: N=0: 2n - 1; N>=1: n - 2^(N-1)."""
    states = np.asarray(states).astype(np.int64)
    if check_bits(n_bits) == 0:
        return 2 * states - 1
    return states - 2 ** (n_bits - 1)


def integer_scale(n_bits: int, h: float) -> float:
    """Real weight = integer weight * this (H for N=0 and N=1, H / 2^(N-1) for N >= 2)."""
    return h if check_bits(n_bits) <= 1 else h / 2 ** (n_bits - 1)
