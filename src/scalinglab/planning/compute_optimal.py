"""Compute-optimal allocation: N*, D* for a FLOP budget, and the compute to reach a target loss.

With C = 6·N·D (Kaplan et al. 2020), the Chinchilla law has the closed form of Hoffmann et al.
(2022, Eq. 4); any other law over (params, tokens) is minimised numerically along the IsoFLOP
curve D = C / (6N). Intervals come from repeating the plan for every bootstrap replicate.
We also report the marginal return of doubling compute: what the next 2× buys, not only the argmin.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from scalinglab.errors import InputError
from scalinglab.fitting.bootstrap import percentile_ci
from scalinglab.fitting.result import FitResult
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law
from scalinglab.planning.predict import log_loss_batch, theta_samples
from scalinglab.runs.schema import FLOPS_PER_PARAM_TOKEN

MIN_FLOPS = FLOPS_PER_PARAM_TOKEN  # a budget below one parameter trained on one token plans nothing
GRID = 401  # log-N grid points along an IsoFLOP curve before the local refinement


def _check_law(law: Law) -> None:
    if set(law.inputs) != {"params", "tokens"}:
        raise InputError(f"plan: the {law.name} law is not a function of params and tokens alone; "
                         f"compute-optimal allocation needs a law over (N, D) such as chinchilla")


def optimum(law: Law, theta: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """(N*, L*) for each parameter row (S, P) at budget ``flops``: min over N of L(N, C/(6N)).

    A coarse log-N grid over all rows at once finds each row's basin; Brent's method then refines it.
    """
    theta = np.atleast_2d(theta)
    budget = flops / FLOPS_PER_PARAM_TOKEN  # N·D
    log_n = np.linspace(0.0, np.log(budget), GRID)  # from 1 parameter up to 1 token
    N = np.exp(log_n)
    ll = log_loss_batch(law, theta, {"params": N, "tokens": budget / N})  # (S, GRID)
    finite = np.isfinite(ll).any(axis=1)  # a degenerate bootstrap replicate (e.g. A = 0) gives NaN, not a crash
    k = np.clip(np.argmin(np.where(np.isfinite(ll), ll, np.inf), axis=1), 1, GRID - 2)
    n_opt, loss = np.full(len(theta), np.nan), np.full(len(theta), np.nan)
    for i, row in enumerate(theta):
        if not finite[i]:
            continue
        def f(z, row=row):
            return float(log_loss_batch(law, row, {"params": np.exp(z), "tokens": budget / np.exp(z)})[0, 0])

        res = minimize_scalar(f, bounds=(log_n[k[i] - 1], log_n[k[i] + 1]), method="bounded",
                              options={"xatol": 1e-10})
        n_opt[i], loss[i] = np.exp(res.x), np.exp(res.fun)
    return n_opt, loss


def _optimal_rows(law: Law, theta: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    if law.name == "chinchilla":
        from scalinglab.laws.chinchilla import compute_optimal

        publics = [law.to_public(t) for t in np.atleast_2d(theta)]
        n_opt = np.array([compute_optimal(p, flops)[0] for p in publics], dtype=float)
        d_opt = flops / (FLOPS_PER_PARAM_TOKEN * n_opt)
        loss = np.exp([log_loss_batch(law, t, {"params": n, "tokens": d})[0, 0]
                       for t, n, d in zip(np.atleast_2d(theta), n_opt, d_opt, strict=True)])
        return n_opt, loss
    return optimum(law, theta, flops)


def _interval(values: np.ndarray, level: float) -> list[float]:
    lo, hi = percentile_ci(np.asarray(values, dtype=float), level)
    return [float(lo), float(hi)]


def plan(fit: FitResult, flops: float) -> dict:
    """N*, D*, tokens per parameter, predicted loss and the return of doubling compute, with intervals."""
    law = get_law(fit.law)
    _check_law(law)
    if not (np.isfinite(flops) and flops >= MIN_FLOPS):
        raise InputError(f"plan: --flops must be a finite number >= {MIN_FLOPS:g} (one parameter, one token); "
                         f"got {flops}")
    theta = np.asarray(fit.theta, dtype=float)
    with np.errstate(all="ignore"):
        n_opt, loss = _optimal_rows(law, theta, flops)
        _, loss2 = _optimal_rows(law, theta, 2 * flops)
    d_opt = flops / (FLOPS_PER_PARAM_TOKEN * n_opt[0])
    if not (np.isfinite([n_opt[0], d_opt, loss[0], loss2[0]]).all() and n_opt[0] >= 1 and d_opt >= 1):
        raise InputError(f"plan: no finite compute-optimal allocation at --flops {flops:g} for this fit "
                         f"(N* = {n_opt[0]:.3g}, D* = {d_opt:.3g}, loss {loss[0]:.4g}); the budget is out of range")
    out = {
        "flops": float(flops), "params": float(n_opt[0]), "tokens": float(d_opt),
        "tokens_per_param": float(d_opt / n_opt[0]), "loss": float(loss[0]),
        "doubling": {"loss_at_2x": float(loss2[0]), "delta_loss": float(loss2[0] - loss[0]),
                     "relative": float(loss2[0] / loss[0] - 1.0)},
    }
    samples = theta_samples(law, fit)
    if samples is not None:
        level = fit.bootstrap.level
        with np.errstate(all="ignore"):
            n_b, l_b = _optimal_rows(law, samples, flops)
            _, l2_b = _optimal_rows(law, samples, 2 * flops)
        d_b = flops / (FLOPS_PER_PARAM_TOKEN * n_b)
        out["intervals"] = {
            "params": _interval(n_b, level), "tokens": _interval(d_b, level),
            "tokens_per_param": _interval(d_b / n_b, level), "loss": _interval(l_b, level),
            "delta_loss": _interval(l2_b - l_b, level),
        }
        out["level"] = level
    return out


def flops_for_target(fit: FitResult, target_loss: float) -> dict:
    """Smallest compute whose compute-optimal loss reaches ``target_loss`` (bisection in log C)."""
    law = get_law(fit.law)
    _check_law(law)
    if not (np.isfinite(target_loss) and target_loss > 0):
        raise InputError(f"plan: --target-loss must be a finite number > 0 (got {target_loss})")
    theta = np.asarray(fit.theta, dtype=float)
    floor = fit.params.get("E")
    if floor is not None and target_loss <= floor:
        raise InputError(f"plan: --target-loss {target_loss} is at or below the fitted irreducible loss E = {floor:.4f}; "
                         "no amount of compute reaches it")

    def gap(log_c: float) -> float:
        return float(np.log(_optimal_rows(law, theta, float(np.exp(log_c)))[1][0]) - np.log(target_loss))

    lo, hi = np.log(1e6), np.log(1e40)
    with np.errstate(all="ignore"):
        ends = gap(lo), gap(hi)
    if not np.isfinite(ends).all():
        raise InputError("plan: this fit gives no finite loss between 1e6 and 1e40 FLOPs; cannot search for the target")
    if gap(lo) < 0:
        raise InputError(f"plan: --target-loss {target_loss} is reached already at 1e6 FLOPs")
    if gap(hi) > 0:
        raise InputError(f"plan: --target-loss {target_loss} is not reached below 1e40 FLOPs")
    log_c = brentq(gap, lo, hi, xtol=1e-10)
    out = plan(fit, float(np.exp(log_c)))
    out["target_loss"] = float(target_loss)
    return out
