"""The (m, n) exponential and exponent-bit powers of two that the softmax kernels are built from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from scalinglab.kernels.softmax_exp import N_HI, R_MAX, exp_parts, pow2, scaled_diff


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
