"""Identifiability diagnostics: can the data tell the law's parameters apart?

With N spanning one decade, α and β trade off against A and B (Besiroglu et al. 2024): the fit is
then a ridge, and reported constants mean little. We measure the Gauss–Newton matrix JᵀJ of the
log-prediction at the optimum (J = ∂log L̂/∂θ, n × P): its condition number and the parameter
correlations of its inverse, and, when a bootstrap ran, the correlations of the refitted samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law

CORRELATION_WARN = 0.95
CONDITION_WARN = 1e12
MIN_DECADES = 1.0


GN_CHUNK = 200_000  # rows per Jacobian block: JᵀJ of millions of rows in bounded memory


def gauss_newton(law: Law, theta: np.ndarray, x: Mapping[str, np.ndarray],
                 weights: np.ndarray | None = None) -> np.ndarray:
    """JᵀWJ (P, P) of the log prediction at θ (W = diag(weights), default all ones), in row blocks."""
    n = next((v.shape[0] for v in x.values() if hasattr(v, "shape")), 0)
    blocks = [None] if n <= GN_CHUNK else [np.arange(a, min(a + GN_CHUNK, n)) for a in range(0, n, GN_CHUNK)]
    H = np.zeros((law.n_params, law.n_params))
    for rows in blocks:
        try:
            xb = x if rows is None else law.subset(x, rows)
        except NotImplementedError:  # a layout the law cannot split: one block
            xb, rows, blocks = x, None, [None]
        _, jac = law.log_predict(theta[None, :], xb, grad=True)
        J = jac[0]
        w = weights if rows is None or weights is None else weights[rows]
        H += J.T @ (J if w is None else J * w[:, None])
        if rows is None:
            break
    return H


def correlation_from_covariance(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    return cov / np.outer(sd, sd)


def diagnose(law: Law, theta: np.ndarray, x: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
             boot_samples: np.ndarray | None = None, weights: np.ndarray | None = None) -> dict:
    """Condition number, correlations and plain-language warnings (``weights``: rows per point of ``x``)."""
    out: dict = {"warnings": []}
    H = gauss_newton(law, theta, x, weights)
    eig = np.linalg.eigvalsh(H)
    cond = float(eig.max() / eig.min()) if eig.min() > 0 else float("inf")
    out["condition_number"] = cond
    names = list(law.param_names)
    try:
        corr = correlation_from_covariance(np.linalg.pinv(H))
        out["correlation"] = {a: {b: float(corr[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}
    except np.linalg.LinAlgError:
        corr = None
    if cond > CONDITION_WARN:
        out["warnings"].append(f"ill-conditioned fit (condition number {cond:.2e}): some parameters are not determined by the data")
    if boot_samples is not None and len(boot_samples) > 2:
        ok = np.isfinite(boot_samples).all(axis=1)
        bc = np.corrcoef(boot_samples[ok].T)
        out["bootstrap_correlation"] = {a: {b: float(bc[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}
        corr = bc
    if corr is not None and "alpha" in names and "beta" in names:
        i, j = names.index("alpha"), names.index("beta")
        r = float(corr[i, j])
        out["alpha_beta_correlation"] = r
        if abs(r) > CORRELATION_WARN:
            out["warnings"].append(f"alpha and beta cannot be separated (correlation {r:+.3f}): widen the range of N or D")
    for col in ("params", "tokens", "flops"):
        if col in inputs:
            v = np.asarray(inputs[col], float)
            decades = float(np.log10(v.max() / v.min()))
            out[f"{col}_decades"] = decades
            if col in law.inputs and decades < MIN_DECADES:
                out["warnings"].append(f"{col} spans only {decades:.2f} decades: exponents are poorly identified")
    return out
