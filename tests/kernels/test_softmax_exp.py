"""The (m, n) exponential and exponent-bit powers of two that the softmax kernels are built from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from scalinglab.kernels.softmax_exp import (
    N_HI,
    R_MAX,
    exp_parts,
    exp_poly,
    exp_reduce,
    max_unordered,
    pow2,
    pow2_offset,
    scaled_diff,
)


@njit
def _exp_parts_array(x):
    m = np.empty_like(x)
    n = np.empty_like(x)
    for i in range(x.size):
        m[i], n[i] = exp_parts(x[i])
    return m, n


@njit
def _pow2_array(k):
    out = np.empty_like(k)
    for i in range(k.size):
        out[i] = pow2(k[i])
    return out


@njit
def _exp_poly_array(r, scale):
    out = np.empty_like(r)
    for i in range(r.size):
        out[i] = exp_poly(r[i], scale)
    return out


@njit
def _pow2_offset_array(x, k0):
    """2^(n + k0) for n = exp_reduce(x)'s exponent, and that n."""
    out = np.empty_like(x)
    n = np.empty_like(x)
    for i in range(x.size):
        _, n[i], t = exp_reduce(x[i])
        out[i] = pow2_offset(t, k0)
    return out, n


@njit
def _max_unordered_array(x):
    c = x[0]
    for i in range(x.size):
        c = max_unordered(c, x[i])
    return c


@njit
def _scaled_diff_array(x, n):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = scaled_diff(x[i], n[i])
    return out


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 2.5e-7), (np.float64, 5e-16)], ids=["float32", "float64"])
def test_exp_parts_is_e_to_the_x(dtype, rtol):
    x = np.linspace(-80, 80, 200_001).astype(dtype)
    m, n = _exp_parts_array(x)
    assert np.all(np.abs(m - 1) < 0.43)  # m = e^r with |r| ≤ R_MAX
    assert np.array_equal(n, np.round(n))
    got = m.astype(np.float64) * np.exp2(n.astype(np.float64))
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < rtol


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_parts_clamps_huge_and_infinite_inputs(dtype):
    m, n = _exp_parts_array(np.array([-np.inf, -1e30, 1e30, np.nan], dtype))
    assert np.isfinite(m[:2]).all() and n[0] == n[1] == -N_HI  # clamped at −SAFE_X: exact share 0
    assert n[2] >= N_HI  # above SAFE_X only n matters: it routes the row to the exact fallback
    assert np.isnan(m[3])


@pytest.mark.parametrize(("dtype", "lo", "hi"), [(np.float32, -126, 127), (np.float64, -1022, 1023)], ids=["float32", "float64"])
def test_pow2_is_exact_and_zero_below_normals(dtype, lo, hi):
    k = np.arange(lo, hi + 1).astype(dtype)
    assert np.array_equal(_pow2_array(k), np.exp2(k.astype(np.float64)).astype(dtype))
    below = np.array([lo - 1, lo - 50, -1e6, -np.inf, np.nan], dtype)
    assert np.array_equal(_pow2_array(below), np.zeros(5, dtype))


def test_scaled_diff_is_accurate_for_large_n():
    # x − n·ln2 for x up to the fast-path limit: Cody–Waite with fma keeps |error| ≪ ulp(1).
    x = np.array([65536.0, 12345.678, -65536.0, 0.25], np.float32)
    n = np.round(x.astype(np.float64) / math.log(2)).astype(np.float32)
    exact = x.astype(np.float64) - n.astype(np.float64) * math.log(2)
    got = _scaled_diff_array(x, n)
    assert np.all(np.abs(got - exact) < 1e-7) and np.all(np.abs(exact) <= R_MAX)


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 1.9e-7), (np.float64, 3e-16)], ids=["float32", "float64"])
def test_exp_poly_relative_error_over_the_reduced_range(dtype, rtol):
    # The bound the two passes' error budget is built on (1.8e-7 for the float32 degree-5 fit,
    # coefficients and Horner steps in float32), on 2e6 points of [−R_MAX, R_MAX].
    r = np.linspace(-R_MAX, R_MAX, 2_000_001).astype(dtype)
    got = _exp_poly_array(r, dtype(1.0)).astype(np.float64)
    assert np.max(np.abs(got / np.exp(r.astype(np.float64)) - 1)) < rtol


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_poly_is_exactly_one_at_zero_and_scales(dtype):
    # e^0 = 1 exactly: online softmax multiplies its running sum by e^(c − c) at most steps.
    assert _exp_poly_array(np.zeros(3, dtype), dtype(1.0))[0] == 1.0
    r = np.linspace(-R_MAX, R_MAX, 101).astype(dtype)
    scaled = _exp_poly_array(r, dtype(0.37)).astype(np.float64)
    plain = _exp_poly_array(r, dtype(1.0)).astype(np.float64)
    assert np.allclose(scaled, 0.37 * plain, rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize(("dtype", "bias"), [(np.float32, 127), (np.float64, 1023)], ids=["float32", "float64"])
def test_pow2_offset_is_exact_power_of_two_and_zero_below_normals(dtype, bias):
    x = np.linspace(-200, 200, 4001).astype(dtype)
    for k0 in (0.0, -7.0, -150.0):
        got, n = _pow2_offset_array(x, dtype(k0))
        assert np.array_equal(n, np.rint(x.astype(np.float64) / math.log(2)).astype(dtype))  # rint(x·log2 e)
        e = n.astype(np.float64) + k0
        want = np.where(e < 1 - bias, 0.0, np.exp2(np.minimum(e, bias)))
        keep = e <= bias
        assert np.array_equal(got[keep].astype(np.float64), want[keep])
    got, _ = _pow2_offset_array(np.array([-np.inf, -1e30], dtype), dtype(0.0))
    assert np.array_equal(got, np.zeros(2, dtype))  # clamped to −SAFE_X: 2^(−94548) → 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_max_unordered_is_the_max_of_finite_inputs(dtype):
    x = np.random.default_rng(3).standard_normal(1000).astype(dtype)
    x[517] = 9.5
    x[3] = -np.inf
    assert _max_unordered_array(x) == dtype(9.5)
