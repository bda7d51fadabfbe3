"""Forecast loss from a fit, with a bootstrap interval when the fit carries one."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.errors import InputError
from scalinglab.fitting.bootstrap import percentile_ci
from scalinglab.fitting.result import FitResult
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law


def theta_samples(law: Law, fit: FitResult) -> np.ndarray | None:
    """Bootstrap replicates in optimisation space (B, P), or None."""
    samples = fit.samples_matrix()
    if samples is None:
        return None
    names = list(fit.params)
    with np.errstate(divide="ignore", invalid="ignore"):  # a replicate at A = 0 maps to log A = -inf, kept as such
        return np.array([law.from_public(dict(zip(names, row, strict=True))) for row in samples])


def log_loss_batch(law: Law, theta: np.ndarray, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """log L for (S, P) parameter rows at n input points → (S, n)."""
    x = law.prepare({k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in inputs.items()})
    return law.log_predict(np.atleast_2d(theta), x)


def predict(fit: FitResult, inputs: Mapping[str, float | np.ndarray]) -> dict:
    """Loss at ``inputs`` (e.g. {"params": 7e10, "tokens": 1.4e12}) with the bootstrap interval."""
    law = get_law(fit.law)
    missing = [c for c in law.inputs if c not in inputs]
    if missing:
        raise InputError(f"predict: the {fit.law} law needs --{missing[0].replace('_', '-')}")
    for k, v in inputs.items():
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise InputError(f"predict: --{k.replace('_', '-')} must be a finite number > 0 (got {v})")
    theta = np.asarray(fit.theta, dtype=float)
    with np.errstate(all="ignore"):
        loss = np.exp(log_loss_batch(law, theta, inputs)[0])
    if not np.all(np.isfinite(loss)):
        raise InputError(f"predict: the {fit.law} law gives no finite loss at "
                         f"{', '.join(f'{k}={_num(v):g}' for k, v in inputs.items() if np.size(v) == 1)}; "
                         "the inputs are too far outside the fitted range")
    out = {"loss": loss.tolist() if loss.size > 1 else float(loss[0]), "target": getattr(fit, "target", "loss"),
           "inputs": {k: _num(v) for k, v in inputs.items()}}
    samples = theta_samples(law, fit)
    if samples is not None:
        with np.errstate(all="ignore"):
            boot = np.exp(log_loss_batch(law, samples, inputs))
        lo, hi = percentile_ci(boot, fit.bootstrap.level)
        out["interval"] = [_num(lo), _num(hi)]
        out["level"] = fit.bootstrap.level
    out["extrapolation"] = {k: float(np.max(np.asarray(v, float)) / fit.inputs[k][1])
                            for k, v in inputs.items() if k in fit.inputs}
    return out


def _num(v):
    arr = np.asarray(v, dtype=float)
    return float(arr.reshape(-1)[0]) if arr.size == 1 else arr.tolist()
