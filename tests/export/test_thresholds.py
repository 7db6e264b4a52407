import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gxnor.export import thresholds as th


def _float_ternary(acc, a, b, r):
    y = a * acc + b
    return (y > r).astype(int) - (y < -r).astype(int)


@settings(max_examples=200, deadline=None)
@given(st.floats(-50, 50).filter(lambda v: abs(v) > 1e-3), st.floats(-100, 100),
       st.floats(0.01, 3), st.integers(1, 5000))
def test_fold_matches_float_rule_everywhere(a, b, r, max_abs):
    acc = np.arange(-max_abs, max_abs + 1)
    flip, lo, hi = th.fold_ternary(np.array([a]), np.array([b]), r, max_abs)
    got = th.apply(acc[:, None], flip, lo, hi)[:, 0]
    assert np.array_equal(got, _float_ternary(acc, a, b, r))
    assert lo[0] < hi[0]


@pytest.mark.parametrize("a", [0.5, -0.5])
def test_exact_boundaries(a):
    # y = a * acc; r = 1 -> y == r exactly at acc = +-2: stays 0 (strict comparison)
    flip, lo, hi = th.fold_ternary(np.array([a]), np.array([0.0]), 1.0, 10)
    acc = np.array([[-3], [-2], [-1], [0], [1], [2], [3]])
    out = th.apply(acc, flip, lo, hi)[:, 0].tolist()
    expected = [-1, 0, 0, 0, 0, 0, 1] if a > 0 else [1, 0, 0, 0, 0, 0, -1]
    assert out == expected
    assert flip.tolist() == [0 if a > 0 else 1]


@pytest.mark.parametrize("b, expected", [(2.0, 1), (-2.0, -1), (0.3, 0), (1.0, 0)])
def test_zero_scale_gives_constant_output(b, expected):
    flip, lo, hi = th.fold_ternary(np.array([0.0]), np.array([b]), 1.0, 100)
    acc = np.arange(-100, 101)[:, None]
    assert set(th.apply(acc, flip, lo, hi)[:, 0].tolist()) == {expected}


def test_thresholds_are_clamped_to_the_accumulator_range():
    flip, lo, hi = th.fold_ternary(np.array([1e-9, 1e-9]), np.array([0.0, 0.0]), 0.5, 7)
    assert lo.min() >= -8 and hi.max() <= 8
    assert th.signed_bits(8) == 5


def test_binary_fold_never_outputs_zero():
    flip, lo, hi = th.fold_binary(np.array([0.3, -0.7]), np.array([0.1, 0.2]), 50)
    out = th.apply(np.arange(-50, 51)[:, None], flip, lo, hi)
    assert set(np.unique(out).tolist()) <= {-1, 1}


def test_nan_is_rejected():
    with pytest.raises(ValueError, match=r"non-finite"):
        th.fold_ternary(np.array([np.nan]), np.array([0.0]), 0.5, 10)


def test_fixed_point_scores_and_tie_break():
    a = np.array([0.01, -0.02, 0.015])
    b = np.array([0.5, 0.1, -0.2])
    frac, coef, offset, bits = th.fixed_point_scores(a, b, 1000)
    assert np.max(np.abs(coef)) <= 2**15 - 1 and np.max(np.abs(coef)) >= 2**14
    acc = np.array([[100, -30, 40]])
    s = th.scores(acc, coef, offset)
    np.testing.assert_allclose(s / 2.0**frac, a * acc + b, atol=2 * 1001 / 2.0**frac)
    assert th.argmax_lowest(np.array([[3, 7, 7, 1]])).tolist() == [1]
    assert bits >= int(np.abs(s).max()).bit_length() + 1
