"""Batched multi-start L-BFGS: thousands of independent starts advanced in lock-step.

Scaling-law objectives are non-convex with many local minima, so the field fits from a grid of
starts (4,500 for Chinchilla). Running scipy's L-BFGS-B once per start spends nearly all its time in
Python overhead around a tiny objective. Here every start is one row of a (S, P) array: one
vectorised objective + gradient call advances all of them, each with its own L-BFGS memory and its
own line search (Nocedal & Wright 2006, Alg. 7.4 two-loop recursion; weak Wolfe conditions by
bisection and doubling). Converged rows leave the active set. The best optimum is then polished by scipy's
L-BFGS-B at tight tolerance, so the answer is the one a one-start-at-a-time loop would reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from scalinglab.fitting.linesearch import ARMIJO_C1, MAX_BACKTRACKS, MEMORY, WOLFE_C2
from scalinglab.fitting.objective import HuberObjective

FULL_POLISH = 2  # optima found on a screening subsample that are re-polished on every row


@dataclass(frozen=True)
class LBFGSOptions:
    max_iter: int = 500
    gtol: float = 1e-10  # stop when max |∂f/∂θ| falls below this
    # … or when one step lowers f by less than this fraction. Loose on purpose: the batched pass only
    # has to find the right basin; the best distinct optima are then polished to 1e-15 by scipy. On the
    # bundled and synthetic Chinchilla problems 1e-6 reaches the same polished optimum as 1e-8 (to
    # 1e-14) in 0.5–0.7× the time.
    ftol: float = 1e-6
    memory: int = MEMORY


def _clip(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(theta, lo), hi)


def lbfgs_batched(obj: HuberObjective, theta0: np.ndarray, rows: np.ndarray | None = None,
                  bounds: list[tuple[float | None, float | None]] | None = None,
                  options: LBFGSOptions = LBFGSOptions(),
                  compiled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise ``obj`` from every row of ``theta0`` (S, P). Returns (θ*, f*, iterations) per row.

    Objectives with a compiled path (Chinchilla) run the same iteration for every start inside one
    numba call (``compiled=False`` forces the NumPy lock-step loop below, which every law can use).

    ``rows`` (S,) names each start's data set when the objective carries per-replicate weights.
    Bounds are enforced by projection onto the box after each step. The state of the rows still
    running is kept compact (finished rows are written out and dropped), so the cost of an
    iteration follows the number of active rows.
    """
    S, P = theta0.shape
    lo = np.array([-np.inf if b[0] is None else b[0] for b in (bounds or [(None, None)] * P)])
    hi = np.array([np.inf if b[1] is None else b[1] for b in (bounds or [(None, None)] * P)])
    rows = np.arange(S) if rows is None else np.asarray(rows)
    if compiled and obj.compiled is not None:  # the same algorithm, every start in one compiled call
        return obj.compiled.lbfgs(theta0, rows, lo, hi, options.max_iter, options.gtol, options.ftol,
                                  options.memory, parallel=obj.threads)
    m = options.memory
    # Outputs for every row; the working state below covers active rows only.
    x_out = _clip(np.array(theta0, dtype=float), lo, hi)
    f_out, g_out = obj.value_and_grad(x_out, rows)
    it_out = np.zeros(S, dtype=int)

    ids = np.flatnonzero(np.isfinite(f_out) & (np.abs(g_out).max(axis=1) > options.gtol))
    x, f, g, r_ids = x_out[ids], f_out[ids], g_out[ids], rows[ids]
    s_hist = np.zeros((m, ids.size, P))
    y_hist = np.zeros((m, ids.size, P))
    rho = np.zeros((m, ids.size))  # 0 marks an empty or rejected pair: the two-loop then skips it
    gamma = np.ones(ids.size)  # initial inverse-Hessian scale sᵀy / yᵀy
    first = np.ones(ids.size, dtype=bool)

    for it in range(options.max_iter):
        if ids.size == 0:
            break
        # Two-loop recursion over the history ring, newest first.
        q = g.copy()
        alphas = np.zeros((m, ids.size))
        order = [(it - 1 - j) % m for j in range(min(it, m))]
        for j in order:
            alphas[j] = rho[j] * np.einsum("sp,sp->s", s_hist[j], q)
            q -= alphas[j][:, None] * y_hist[j]
        r = gamma[:, None] * q
        for j in reversed(order):
            beta = rho[j] * np.einsum("sp,sp->s", y_hist[j], r)
            r += (alphas[j] - beta)[:, None] * s_hist[j]
        d = -r
        slope = np.einsum("sp,sp->s", g, d)
        bad_dir = ~(slope < 0)
        if bad_dir.any():  # fall back to steepest descent for rows whose memory misleads
            d[bad_dir] = -g[bad_dir]
        t = np.ones(ids.size)
        t[first] = np.minimum(1.0, 1.0 / np.maximum(np.abs(g[first]).sum(axis=1), 1e-300))

        # Weak Wolfe line search: bisect while the Armijo condition fails, double while the slope along
        # the step is still steep (so accepted pairs keep sᵀy > 0 and the memory stays useful); only
        # rows not yet satisfied are re-evaluated. The last Armijo point is kept if trials run out.
        x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
        pending = np.arange(ids.size)
        accepted = np.zeros(ids.size, dtype=bool)
        t_lo, t_hi = np.zeros(ids.size), np.full(ids.size, np.inf)
        for _ in range(MAX_BACKTRACKS):
            if pending.size == 0:
                break
            trial = _clip(x[pending] + t[pending, None] * d[pending], lo, hi)
            ft, gt = obj.value_and_grad(trial, r_ids[pending])
            step = trial - x[pending]
            decrease = np.einsum("sp,sp->s", g[pending], step)
            armijo = np.isfinite(ft) & (ft <= f[pending] + ARMIJO_C1 * np.minimum(decrease, 0.0))
            steep = armijo & (np.einsum("sp,sp->s", gt, step) < WOLFE_C2 * decrease)
            ok = pending[armijo]
            x_new[ok], f_new[ok], g_new[ok] = trial[armijo], ft[armijo], gt[armijo]
            accepted[ok] = True
            t_hi[pending[~armijo]] = t[pending[~armijo]]
            t_lo[pending[steep]] = t[pending[steep]]
            pending = pending[~armijo | steep]
            tp = t[pending]
            t[pending] = np.where(np.isinf(t_hi[pending]), 2.0 * tp, 0.5 * (t_lo[pending] + t_hi[pending]))

        s = x_new - x
        y = g_new - g
        sy = np.einsum("sp,sp->s", s, y)
        yy = np.einsum("sp,sp->s", y, y)
        good_yy = yy > 0
        good = accepted & good_yy & (sy > 1e-10 * np.sqrt(yy * np.einsum("sp,sp->s", s, s)) + 1e-300)
        slot = it % m
        s_hist[slot] = np.where(good[:, None], s, 0.0)
        y_hist[slot] = np.where(good[:, None], y, 0.0)
        safe_sy = np.where(good, sy, 1.0)
        rho[slot] = np.where(good, 1.0 / safe_sy, 0.0)
        gamma = np.where(good, sy / np.where(good, yy, 1.0), gamma)  # yy > 0 wherever good
        first &= ~good

        small_step = (f - f_new) <= options.ftol * np.maximum(np.maximum(np.abs(f), np.abs(f_new)), 1e-300)
        x, f, g = x_new, f_new, g_new
        projected_g = np.where(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)), 0.0, g)
        small_grad = np.abs(projected_g).max(axis=1) <= options.gtol
        # A failed line search means the row cannot make progress: it has converged as far as it will.
        stop = ~accepted | small_step | small_grad
        it_out[ids] += 1
        if stop.any():
            x_out[ids[stop]], f_out[ids[stop]], g_out[ids[stop]] = x[stop], f[stop], g[stop]
            keep = ~stop
            ids, x, f, g, r_ids = ids[keep], x[keep], f[keep], g[keep], r_ids[keep]
            s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
            gamma, first = gamma[keep], first[keep]
    x_out[ids], f_out[ids] = x, f
    return x_out, f_out, it_out


def refine(obj: HuberObjective, theta: np.ndarray, bounds=None, row: int | None = None,
           ftol: float = 1e-15, gtol: float = 1e-12, max_iter: int = 15000) -> tuple[np.ndarray, float]:
    """Polish one optimum with scipy's L-BFGS-B at tight tolerance.

    Its vectors have P ≈ 5 entries: one BLAS thread, since waking a thread pool for each tiny BLAS call
    inside L-BFGS-B costs milliseconds per step on a busy machine (measured: 11 ms vs < 0.1 ms).
    """
    with threadpool_limits(1, user_api="blas"):
        res = minimize(obj.scalar(row), theta, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": gtol, "maxiter": max_iter, "maxfun": 4 * max_iter})
    return res.x, float(res.fun)


def distinct_optima(theta: np.ndarray, f: np.ndarray, k: int, rtol: float = 1e-6) -> np.ndarray:
    """Indices of the k best rows whose parameters differ from every better row (distinct basins)."""
    order = np.argsort(np.where(np.isfinite(f), f, np.inf))
    chosen: list[int] = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(theta[i] - theta[j]) / (np.abs(theta[j]) + 1e-3)) > rtol for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return np.array(chosen, dtype=int)


@dataclass(frozen=True)
class MultiStartResult:
    theta: np.ndarray  # (P,) best optimum after polishing
    objective: float
    starts: int
    local_theta: np.ndarray  # (S, P) every start's optimum
    local_f: np.ndarray  # (S,)


def multistart(obj: HuberObjective, starts: np.ndarray, bounds=None, polish: int = 5,
               options: LBFGSOptions = LBFGSOptions(), screen: HuberObjective | None = None,
               full_polish: int = FULL_POLISH) -> MultiStartResult:
    """Batched L-BFGS from every start, then polish the ``polish`` best distinct optima; keep the best.

    With ``screen`` (a weighted subsample of ``obj``, see ``screen.py``) the search and the first polish
    run on the subsample; the ``full_polish`` best distinct polished optima are then polished again on
    ``obj`` — every row — and the result is the exact objective's optimum.
    """
    search = obj if screen is None else screen
    theta, f, _ = lbfgs_batched(search, starts, bounds=bounds, options=options)
    candidates = [theta[i] for i in distinct_optima(theta, f, polish, rtol=1e-3)]
    if search is not obj and candidates:
        polished = [refine(search, t, bounds=bounds) for t in candidates]
        pt = np.array([p[0] for p in polished])
        pf = np.array([p[1] for p in polished])
        candidates = [pt[i] for i in distinct_optima(pt, pf, full_polish, rtol=1e-3)]
    best_theta, best_f = None, np.inf
    for start in candidates:
        t, v = refine(obj, start, bounds=bounds)
        if v < best_f:
            best_theta, best_f = t, v
    if best_theta is None:
        raise FloatingPointError("every start diverged: the objective is not finite anywhere on the grid")
    return MultiStartResult(best_theta, best_f, len(starts), theta, f)


def scipy_loop(obj: HuberObjective, starts: np.ndarray, bounds=None, ftol: float = 1e-15, gtol: float = 1e-12,
               max_iter: int = 15000) -> tuple[np.ndarray, float]:
    """Reference: plain scipy L-BFGS-B from each start, one at a time; the best result."""
    best_theta, best_f = None, np.inf
    fg = obj.scalar()
    for start in starts:
        res = minimize(fg, start, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": gtol, "maxiter": max_iter, "maxfun": 4 * max_iter})
        if np.isfinite(res.fun) and res.fun < best_f:
            best_theta, best_f = res.x, float(res.fun)
    return best_theta, best_f
