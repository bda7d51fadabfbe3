"""Approaches 1 and 2 of Hoffmann et al. (2022, §3.1–3.2): N*(C) ∝ C^a without assuming a loss law.

Approach 1 (training-curve envelope): along every run's curve, loss is a function of compute; at
each compute level the run with the lowest loss gives N*(C). Approach 2 (IsoFLOP profiles): at each
compute level, fit a parabola of loss in log N across runs and take its vertex. Both then fit
log N* = a·log C + c by least squares; D* ∝ C^b with b = 1 − a since C = 6·N·D.

Runs logged at several token counts are interpolated (linearly in log C) to shared compute levels;
ladders with one point per run (an IsoFLOP grid) are grouped by compute instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.errors import InputError

LEVELS = 12  # compute levels spread log-uniformly over the range the runs cover
GROUP_TOL_DECADES = 0.05  # one-point runs within this many decades of compute share an IsoFLOP level


def _curves(table: pd.DataFrame) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(N, log C sorted, log L) per run with ≥ 2 points."""
    out = []
    for _, g in table.groupby("run", sort=False):
        if len(g) < 2 or g["params"].nunique() != 1:
            continue
        g = g.sort_values("flops")
        out.append((float(g["params"].iloc[0]), np.log(g["flops"].to_numpy()), np.log(g["loss"].to_numpy())))
    return out


def _levels_from_curves(curves, levels: int) -> tuple[np.ndarray, list[list[tuple[float, float]]]]:
    """Compute levels and, per level, (N, loss) of every run whose curve spans it."""
    lo = min(c[1][0] for c in curves)
    hi = max(c[1][-1] for c in curves)
    grid = np.linspace(lo, hi, levels + 2)[1:-1]
    per_level = []
    for lc in grid:
        pts = [(n, float(np.exp(np.interp(lc, x, y)))) for n, x, y in curves if x[0] <= lc <= x[-1]]
        per_level.append(pts)
    return np.exp(grid), per_level


def _levels_from_points(table: pd.DataFrame) -> tuple[np.ndarray, list[list[tuple[float, float]]]]:
    logc = np.log10(table["flops"].to_numpy())
    order = np.argsort(logc)
    groups, current = [], [order[0]]
    for i in order[1:]:
        if logc[i] - logc[current[0]] <= GROUP_TOL_DECADES:
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)
    levels, per_level = [], []
    for g in groups:
        sub = table.iloc[g]
        levels.append(float(10 ** np.mean(logc[g])))
        per_level.append(list(zip(sub["params"].astype(float), sub["loss"].astype(float), strict=True)))
    return np.array(levels), per_level


def _power_fit(c: np.ndarray, n: np.ndarray, what: str) -> dict:
    if len(c) < 2:
        raise InputError(f"{what}: fewer than 2 compute levels give an optimum; need runs spanning more compute")
    a, intercept = np.polyfit(np.log(c), np.log(n), 1)
    resid = np.log(n) - (a * np.log(c) + intercept)
    return {"a": float(a), "b": float(1 - a), "log_coefficient": float(intercept), "levels": len(c),
            "flops": c.tolist(), "params_opt": n.tolist(), "rms_log_residual": float(np.sqrt(np.mean(resid**2)))}


def approach1(table: pd.DataFrame, levels: int = LEVELS) -> dict:
    """Envelope of training curves: the lowest-loss run at each compute level."""
    curves = _curves(table)
    if len(curves) < 3:
        raise InputError("approach 1 needs at least 3 runs logged at 2 or more token counts (loss curves)")
    c, per_level = _levels_from_curves(curves, levels)
    keep = [i for i, pts in enumerate(per_level) if len(pts) >= 2]
    n_opt = np.array([min(per_level[i], key=lambda p: p[1])[0] for i in keep])
    return _power_fit(c[keep], n_opt, "approach 1")


def approach2(table: pd.DataFrame, levels: int = LEVELS) -> dict:
    """IsoFLOP parabolas: vertex of loss vs log N at each compute level (interior minima only)."""
    curves = _curves(table)
    c, per_level = _levels_from_curves(curves, levels) if len(curves) >= 3 else _levels_from_points(table)
    kept_c, n_opt = [], []
    for ci, pts in zip(c, per_level, strict=True):
        if len({p[0] for p in pts}) < 3:
            continue
        x = np.log([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        p2, p1, _ = np.polyfit(x, y, 2)
        if p2 <= 0:
            continue
        vertex = -p1 / (2 * p2)
        if x.min() <= vertex <= x.max():  # an optimum outside the sampled sizes is extrapolation, not data
            kept_c.append(ci)
            n_opt.append(np.exp(vertex))
    return _power_fit(np.array(kept_c), np.array(n_opt), "approach 2")
