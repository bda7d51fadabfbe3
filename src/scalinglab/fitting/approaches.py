"""Approaches 1 and 2 of Hoffmann et al. (2022, §3.1–3.2): N*(C) ∝ C^a without assuming a loss law.

Approach 1 (training-curve envelope): along every run's curve, loss is a function of compute; at
each compute level the run with the lowest loss gives N*(C). Approach 2 (IsoFLOP profiles): at each
compute level, fit a parabola of loss in log N across runs and take its vertex. Both then fit
log N* = a·log C + c by least squares; D* ∝ C^b with b = 1 − a since C = 6·N·D.

Runs logged at several token counts are interpolated (linearly in log C) to shared compute levels;
ladders with one point per run (an IsoFLOP grid) are grouped by compute instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.design import small_int

LEVELS = 12  # compute levels spread log-uniformly over the range the runs cover
GROUP_TOL_DECADES = 0.05  # one-point runs within this many decades of compute share an IsoFLOP level


@dataclass(frozen=True)
class Curves:
    """Runs with ≥ 2 points and one model size: N per run and each run's (log C, log L) sorted by C."""

    n: np.ndarray  # (K,) model size of each run
    start: np.ndarray  # (K + 1,) points of run k are start[k]:start[k+1]
    logc: np.ndarray  # (M,) log compute, increasing within each run
    logl: np.ndarray  # (M,) log loss

    def __len__(self) -> int:
        return self.n.size


def curves(table: pd.DataFrame) -> Curves:
    """Every run's curve, found by hashing run ids and one sort (linear in rows up to the sort)."""
    codes, labels = pd.factorize(table["run"], sort=False)  # runs in order of appearance (Arrow-backed: no str objects)
    flops = table["flops"].to_numpy(dtype=float)
    order = np.argsort(flops, kind="stable")
    order = order[np.argsort(small_int(codes[order], len(labels)), kind="stable")]  # by run, then by C
    sizes = np.bincount(codes, minlength=len(labels))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    params = table["params"].to_numpy(dtype=float)[order]
    one_size = np.minimum.reduceat(params, first) == np.maximum.reduceat(params, first) if len(labels) else \
        np.zeros(0, dtype=bool)
    keep = (sizes >= 2) & one_size
    rows = order[np.repeat(keep, sizes)]
    return Curves(n=params[first[keep]], start=np.concatenate([[0], np.cumsum(sizes[keep])]),
                  logc=np.log(flops[rows]), logl=np.log(table["loss"].to_numpy(dtype=float)[rows]))


def _levels_from_curves(curves: Curves, levels: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Compute levels and, per level, (N, loss) of every run whose curve spans it (linear in log C)."""
    first, last = curves.logc[curves.start[:-1]], curves.logc[curves.start[1:] - 1]
    lo, hi = float(first.min()), float(last.max())
    grid = np.linspace(lo, hi, levels + 2)[1:-1]
    # One search for every run at once: run k's points live at keys k·span + (log C − lo), increasing.
    span = (hi - lo) + 2.0
    keys = np.repeat(np.arange(len(curves)), np.diff(curves.start)) * span + (curves.logc - lo)
    per_level = []
    for lc in grid:
        ks = np.flatnonzero((first <= lc) & (lc <= last))
        j = np.searchsorted(keys, ks * span + (lc - lo), side="right") - 1  # last point at or below lc
        j = np.clip(j, curves.start[ks], curves.start[ks + 1] - 2)
        x0, x1 = curves.logc[j], curves.logc[j + 1]
        t = np.divide(lc - x0, x1 - x0, out=np.zeros_like(x0), where=x1 > x0)
        per_level.append((curves.n[ks], np.exp(curves.logl[j] + t * (curves.logl[j + 1] - curves.logl[j]))))
    return np.exp(grid), per_level


def _levels_from_points(table: pd.DataFrame) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """One-point runs grouped by compute: a level opens at a point and takes all within GROUP_TOL_DECADES."""
    logc = np.log10(table["flops"].to_numpy(dtype=float))
    order = np.argsort(logc, kind="stable")
    sorted_c = logc[order]
    params = table["params"].to_numpy(dtype=float)[order]
    loss = table["loss"].to_numpy(dtype=float)[order]
    levels, per_level, a = [], [], 0
    while a < order.size:  # one step per level, not per row
        b = int(np.searchsorted(sorted_c, sorted_c[a] + GROUP_TOL_DECADES, side="right"))
        levels.append(float(10 ** np.mean(sorted_c[a:b])))
        per_level.append((params[a:b], loss[a:b]))
        a = b
    return np.array(levels), per_level


def _power_fit(c: np.ndarray, n: np.ndarray, what: str) -> dict:
    if len(c) < 2:
        raise InputError(f"{what}: fewer than 2 compute levels give an optimum; need runs spanning more compute")
    a, intercept = np.polyfit(np.log(c), np.log(n), 1)
    resid = np.log(n) - (a * np.log(c) + intercept)
    return {"a": float(a), "b": float(1 - a), "log_coefficient": float(intercept), "levels": len(c),
            "flops": c.tolist(), "params_opt": n.tolist(), "rms_log_residual": float(np.sqrt(np.mean(resid**2)))}


def approach1(table: pd.DataFrame, levels: int = LEVELS, runs: Curves | None = None) -> dict:
    """Envelope of training curves: the lowest-loss run at each compute level (``runs``: ``curves(table)``)."""
    runs = curves(table) if runs is None else runs
    if len(runs) < 3:
        raise InputError("approach 1 needs at least 3 runs logged at 2 or more token counts (loss curves)")
    c, per_level = _levels_from_curves(runs, levels)
    keep = [i for i, (n, _) in enumerate(per_level) if n.size >= 2]
    n_opt = np.array([per_level[i][0][np.argmin(per_level[i][1])] for i in keep])
    return _power_fit(c[keep], n_opt, "approach 1")


def approach2(table: pd.DataFrame, levels: int = LEVELS, runs: Curves | None = None) -> dict:
    """IsoFLOP parabolas: vertex of loss vs log N at each compute level (interior minima only)."""
    runs = curves(table) if runs is None else runs
    c, per_level = _levels_from_curves(runs, levels) if len(runs) >= 3 else _levels_from_points(table)
    kept_c, n_opt = [], []
    for ci, (n, y) in zip(c, per_level, strict=True):
        if np.unique(n).size < 3:
            continue
        x = np.log(n)
        p2, p1, _ = np.polyfit(x, y, 2)
        if p2 <= 0:
            continue
        vertex = -p1 / (2 * p2)
        if x.min() <= vertex <= x.max():  # an optimum outside the sampled sizes is extrapolation, not data
            kept_c.append(ci)
            n_opt.append(np.exp(vertex))
    return _power_fit(np.array(kept_c), np.array(n_opt), "approach 2")
