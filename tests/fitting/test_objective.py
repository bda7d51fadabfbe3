"""The Huber objective: value against a plain loop, gradient against finite differences, fused vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import huber as scipy_huber

from scalinglab.fitting.objective import HuberObjective, huber
from scalinglab.fitting.synthetic import chinchilla_grid
from scalinglab.laws.registry import get_law


def make(fused, weights=None):
    t = chinchilla_grid(5, 6, noise=0.02, seed=3)
    law = get_law("chinchilla")
    x = law.prepare({"params": t.params.to_numpy(), "tokens": t.tokens.to_numpy()})
    return HuberObjective(law, x, t.loss.to_numpy(), 1e-3, weights=weights, fused=fused), t


def test_huber_matches_scipy():
    r = np.linspace(-0.01, 0.01, 101)
    np.testing.assert_allclose(huber(r, 1e-3), scipy_huber(1e-3, r), rtol=1e-14, atol=0)


def test_value_matches_plain_sum():
    obj, t = make(fused=False)
    theta = np.array([[6.0, 6.0, 0.5, 0.34, 0.28]])
    E, A, B = np.exp(0.5), np.exp(6.0), np.exp(6.0)
    pred = np.log(E + A * t.params**-0.34 + B * t.tokens**-0.28)
    expected = sum(scipy_huber(1e-3, p - np.log(y)) for p, y in zip(pred, t.loss, strict=True))
    assert obj.value(theta)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fused", [False, True], ids=["numpy", "numba-fused"])
def test_gradient_matches_finite_differences(fused):
    obj, _ = make(fused)
    rng = np.random.default_rng(0)
    theta = np.array([6.0, 7.0, 0.4, 0.35, 0.3]) + 0.1 * rng.standard_normal((4, 5))
    f, g = obj.value_and_grad(theta)
    h = 1e-6
    for p in range(5):
        e = np.zeros(5)
        e[p] = h
        fd = (obj.value(theta + e) - obj.value(theta - e)) / (2 * h)
        np.testing.assert_allclose(g[:, p], fd, rtol=1e-5, atol=1e-9)


def test_fused_kernel_agrees_with_numpy_path_with_weights():
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 3, size=(3, 30)).astype(float)
    a, _ = make(True, weights)
    b, _ = make(False, weights)
    theta = np.array([6.0, 7.0, 0.4, 0.35, 0.3]) + 0.1 * rng.standard_normal((6, 5))
    rows = np.array([0, 1, 2, 2, 1, 0])
    fa, ga = a.value_and_grad(theta, rows)
    fb, gb = b.value_and_grad(theta, rows)
    np.testing.assert_allclose(fa, fb, rtol=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-15)


def test_vector_log_is_within_3_ulp_and_flags_invalid_inputs():
    from scalinglab.fitting.fused_kernels import vlog_array

    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 200_000)), rng.uniform(0.5, 2.0, 200_000),
                        [1.0, 2.0, np.sqrt(0.5), np.sqrt(2.0), 2.2250738585072014e-308, 1.7e308]])
    out = np.empty_like(x)
    vlog_array(x, out)
    ref = np.log(x)
    ulps = np.abs(out - ref) / np.spacing(np.abs(ref).clip(min=np.finfo(float).tiny))
    assert ulps.max() <= 3
    assert out[-6] == 0.0
    bad = np.array([0.0, 5e-324, np.inf, np.nan, -1.0])
    out = np.empty_like(bad)
    vlog_array(bad, out)
    assert np.isnan(out).all()
