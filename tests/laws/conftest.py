"""Shared helper for law tests: the analytic Jacobian against central differences."""

from __future__ import annotations

import numpy as np


def check_jacobian(law, theta, x, rtol=1e-6, atol=1e-8, h=1e-6):
    """Compare log_predict's Jacobian (S, n, P) with central differences at every row of theta."""
    pred, jac = law.log_predict(theta, x, grad=True)
    assert np.allclose(pred, law.log_predict(theta, x)), "grad=True changed the prediction"
    fd = np.empty_like(jac)
    for p in range(theta.shape[1]):
        step = h * np.maximum(1.0, np.abs(theta[:, p : p + 1]))
        tp, tm = theta.copy(), theta.copy()
        tp[:, p : p + 1] += step
        tm[:, p : p + 1] -= step
        fd[..., p] = (law.log_predict(tp, x) - law.log_predict(tm, x)) / (2 * step)
    np.testing.assert_allclose(jac, fd, rtol=rtol, atol=atol)
