"""Shared helpers for law tests: a finite-difference Jacobian check and a small reference fitter.

``fit_huber`` is a deliberately plain stand-in for the package fitter: it scores the law's whole
init grid in one batched call, then runs scipy's L-BFGS-B on Σ Huber_δ(log L̂ − log L) from the
best few starts (Hoffmann et al. 2022, App. D.2: δ = 1e-3, sum not mean).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, App. D.2


def huber(r, delta=HUBER_DELTA):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


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


def fit_huber(law, x, loss, top=8, delta=HUBER_DELTA, starts=None):
    """Best of L-BFGS-B runs from the ``top`` best grid starts. Returns (theta, objective)."""
    log_loss = np.log(loss)
    starts = law.init_grid() if starts is None else starts
    bounds = law.bounds()
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    starts = np.clip(starts, lo, hi)
    with np.errstate(all="ignore"):
        f0 = huber(law.log_predict(starts, x) - log_loss, delta).sum(axis=1)
    order = np.argsort(np.where(np.isfinite(f0), f0, np.inf))[:top]

    def fg(theta):
        with np.errstate(all="ignore"):
            pred, jac = law.log_predict(theta[None, :], x, grad=True)
        r = pred[0] - log_loss
        f, g = huber(r, delta).sum(), np.clip(r, -delta, delta) @ jac[0]
        if not (np.isfinite(f) and np.isfinite(g).all()):
            return 1e300, np.zeros_like(theta)
        return float(f), g

    best = None
    for i in order:
        res = minimize(fg, starts[i], jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x, float(best.fun)
