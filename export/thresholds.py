"""Threshold math: the one place where batch-norm + activation become integer comparisons.

A hidden neuron computes an integer accumulator ``acc`` (after max-pooling, if any). In the
trained model its real pre-activation is z = s * acc (s = weight scale * input scale), then

    y = gamma * (z - mean) / sqrt(var + eps) + beta = A * acc + B,
    A = gamma * s / sqrt(var + eps),   B = beta - gamma * mean / sqrt(var + eps),

and the ternary activation is +1 if y > r, -1 if y < -r, 0 otherwise.

Folded form, per neuron (``flip``, ``lo``, ``hi``), all integers:

    v   = -acc if flip else acc
    out = +1 if v >= hi;  -1 if v <= lo;  0 otherwise          (lo < hi always)

A > 0:  hi = floor((r - B) / A) + 1,   lo = ceil((-r - B) / A) - 1,   flip = 0
A < 0:  the same with acc -> -acc and A -> -A, flip = 1 (the polarity flip)
A = 0:  constant output: +1 (hi = -M, lo = -M-1), -1 (lo = M, hi = M+1) or 0 (lo = -M-1,
        hi = M+1), where M bounds |acc|.
Thresholds are clamped (hi to [-M, M+1], lo to [-M-1, M]; beyond that they act the same), so
they fit ``bits(M+1) + 1`` signed bits and lo < hi holds.

A binary activation (single step at 0: +1 if y > 0 else -1) uses the same form with lo = hi - 1.

The last layer keeps y = A * acc + B as class scores in fixed point:
    score = round(A * 2^F) * acc + round(B * 2^F)
with F chosen per layer so that the coefficient fits ``COEF_BITS`` signed bits; argmax with
ties broken towards the lowest class index.
"""

from __future__ import annotations

import math

import numpy as np

COEF_BITS = 16
OFFSET_BITS = 32


def signed_bits(max_abs: int) -> int:
    """Bits of a two's complement integer holding [-max_abs-1, max_abs]."""
    return int(max_abs).bit_length() + 1


def affine(gamma, beta, mean, var, eps: float, scale: float):
    """(A, B) of y = A * acc + B in float64."""
    gamma, beta, mean, var = (np.asarray(t, np.float64) for t in (gamma, beta, mean, var))
    inv = gamma / np.sqrt(var + eps)
    return inv * scale, beta - inv * mean


def fold_ternary(a: np.ndarray, b: np.ndarray, r: float, max_abs: int):
    """Integer (flip, lo, hi) per neuron for the ternary activation with steps at -r, +r."""
    return fold(a, b, -r, r, max_abs)


def fold_binary(a: np.ndarray, b: np.ndarray, max_abs: int, inclusive: bool = False):
    """Binary activation (step at 0): lo = hi - 1, never 0. +1 when y > 0 (gxnor's sign, a tie
    gives -1) or, with ``inclusive``, when y >= 0 (QONNX's BipolarQuant: a tie gives +1)."""
    flip, _, hi = fold(a, b, 0.0, 0.0, max_abs, hi_inclusive=inclusive)
    return flip, hi - 1, hi


def fold(a, b, t_lo, t_hi, max_abs: int, lo_inclusive: bool = False,
         hi_inclusive: bool = False):
    """Integer (flip, lo, hi) per neuron for y = a * acc + b with two steps: +1 when y > t_hi
    (y >= t_hi if ``hi_inclusive``), -1 when y < t_lo (y <= t_lo if ``lo_inclusive``), else 0.
    ``t_lo`` and ``t_hi`` are scalars or per-neuron arrays; ``max_abs`` bounds |acc|."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    t_neg = np.broadcast_to(np.asarray(t_lo, np.float64), a.shape)
    t_pos = np.broadcast_to(np.asarray(t_hi, np.float64), a.shape)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("batch-norm folding produced a non-finite value (NaN/inf in the "
                         "batch-norm tensors?)")

    def above(y):  # y is past the upper step: +1
        return y >= t_pos if hi_inclusive else y > t_pos

    def below(y):  # y is past the lower step: -1
        return y <= t_neg if lo_inclusive else y < t_neg

    m = int(max_abs)
    flip = (a < 0).astype(np.int64)
    mag = np.abs(a)
    lo = np.empty(a.shape, np.int64)
    hi = np.empty(a.shape, np.int64)
    nz = mag > 0
    safe = np.where(nz, mag, 1.0)
    t_hi_v = (t_pos - b) / safe
    t_lo_v = (t_neg - b) / safe
    # Division rounds: settle each threshold so that it agrees exactly with the float64
    # evaluation of y = |A| v + B (monotone in v): hi is the least v past the upper step, lo
    # the largest v past the lower one.
    h = np.floor(np.clip(t_hi_v, -m - 2, m + 2)) + 1
    lo_f = np.ceil(np.clip(t_lo_v, -m - 2, m + 2)) - 1
    for _ in range(2):
        h = np.where(above(safe * (h - 1) + b), h - 1, h)
        h = np.where(above(safe * h + b), h, h + 1)
        lo_f = np.where(below(safe * (lo_f + 1) + b), lo_f + 1, lo_f)
        lo_f = np.where(below(safe * lo_f + b), lo_f, lo_f - 1)
    # hi = -M means "always", lo = -M-1 "never"; lo = M "always", hi = M+1 "never": clamping
    # to those ranges keeps lo < hi and the behaviour on [-M, M]
    hi[nz] = np.clip(h[nz], -m, m + 1)
    lo[nz] = np.clip(lo_f[nz], -m - 1, m)
    # constant neurons (A == 0): y = B
    z = ~nz
    pos, neg = z & above(b), z & below(b)
    mid = z & ~pos & ~neg
    hi[pos], lo[pos] = -m, -m - 1
    hi[neg], lo[neg] = m + 1, m
    hi[mid], lo[mid] = m + 1, -m - 1
    flip[z] = 0
    if np.any(lo >= hi):
        raise ValueError("the lower step lies above the upper one: thresholds cross")
    return flip, lo, hi


def apply(acc: np.ndarray, flip: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Ternary outputs (int8) from integer accumulators (..., n) and per-neuron thresholds."""
    sign = 1 - 2 * np.asarray(flip, np.int64)
    v = acc * sign  # -acc where flipped
    out = (v >= hi).view(np.int8) - (v <= lo).view(np.int8)
    return out.astype(np.int8, copy=False)


def fixed_point_scores(a: np.ndarray, b: np.ndarray, max_abs: int):
    """(frac_bits F, coef, offset) with coef = round(A 2^F) in COEF_BITS signed bits."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("score folding produced a non-finite value")
    amax = float(np.max(np.abs(a))) if a.size else 0.0
    limit = 2 ** (COEF_BITS - 1) - 1
    frac = 0 if amax == 0 else int(math.floor(math.log2(limit / amax)))
    # the offset must fit OFFSET_BITS too
    bmax = float(np.max(np.abs(b))) if b.size else 0.0
    while frac > -64 and bmax * 2.0**frac > 2 ** (OFFSET_BITS - 1) - 1:
        frac -= 1
    frac = min(frac, 62)
    coef = np.round(a * 2.0**frac).astype(np.int64)
    offset = np.round(b * 2.0**frac).astype(np.int64)
    coef = np.clip(coef, -limit, limit)
    score_max = int(np.max(np.abs(coef))) * int(max_abs) + int(np.max(np.abs(offset)))
    return frac, coef, offset, signed_bits(score_max)


def scores(acc: np.ndarray, coef: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return acc.astype(np.int64) * np.asarray(coef, np.int64) + np.asarray(offset, np.int64)


def argmax_lowest(scores_: np.ndarray) -> np.ndarray:
    """Index of the largest score; ties go to the lowest index (numpy's argmax rule)."""
    return np.argmax(scores_, axis=-1)
