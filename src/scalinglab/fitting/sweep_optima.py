"""Where a hyperparameter sweep is best: the loss-vs-log η (or log B) minimum located by a parabola.

DeepSeek LLM (Bi et al. 2024, §3.1) and "Predictable Scale" (Li et al. 2025, §3) fit their optimal-η
and optimal-B laws to the best setting of a grid sweep per (N, D); Li et al. observe that the loss is
convex in log η and log B near the optimum. As in Approach 2 of Hoffmann et al. (2022) we locate the
optimum between grid points with a parabola in the log of the knob, fitted to the grid minimum and
its neighbours (``WINDOW`` points each side), and accept it only when the parabola opens upward and its
vertex lies inside the fitted window: an optimum at the edge of the sweep is not measured.

With two knobs swept at once (η and B), the loss of each η is its best over B (the profile), so η* is
the optimum at the best batch size, and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["WINDOW", "BUDGET_TOL", "Optimum", "parabola_minimum", "profile", "sweep_optima", "nominal_budgets"]

WINDOW = 2  # grid points each side of the discrete minimum that the parabola sees (5 points in all)
# Runs of one token budget at different batch sizes see slightly different D (whole steps of B·T tokens):
# token counts within this relative distance of their neighbour are one budget.
BUDGET_TOL = 0.1


@dataclass(frozen=True)
class Optimum:
    log_h: float  # log of the optimal knob value (NaN when not measured)
    loss: float  # the parabola's value at its vertex (or the grid minimum)
    status: str  # "ok", "edge" (grid minimum at the sweep's edge), "flat" (parabola not convex), "few" (< 3 values)


def parabola_minimum(log_h: np.ndarray, loss: np.ndarray, window: int = WINDOW) -> Optimum:
    """Vertex of the parabola through the grid minimum and its ``window`` neighbours each side.

    ``log_h`` are distinct knob values (any order); ``loss`` the loss at each.
    """
    order = np.argsort(log_h)
    x, y = np.asarray(log_h, float)[order], np.asarray(loss, float)[order]
    if x.size < 3:
        return Optimum(float("nan"), float(np.min(y)) if y.size else float("nan"), "few")
    i = int(np.argmin(y))
    if i == 0 or i == x.size - 1:
        return Optimum(float("nan"), float(y[i]), "edge")
    lo, hi = max(0, i - window), min(x.size, i + window + 1)
    xs, ys = x[lo:hi], y[lo:hi]
    c2, c1, c0 = np.polyfit(xs, ys, 2)
    if not c2 > 0:
        return Optimum(float("nan"), float(y[i]), "flat")
    v = -c1 / (2 * c2)
    if not xs[0] <= v <= xs[-1]:
        return Optimum(float("nan"), float(y[i]), "flat")
    return Optimum(float(v), float(c0 + c1 * v + c2 * v * v), "ok")


def profile(group: pd.DataFrame, knob: str) -> tuple[np.ndarray, np.ndarray]:
    """(knob values, best loss at each over every other setting) of one (N, D) group."""
    best = group.groupby(knob, sort=True)["loss"].min()
    return best.index.to_numpy(dtype=float), best.to_numpy(dtype=float)


def sweep_optima(table: pd.DataFrame, knob: str, by: tuple[str, ...] = ("params", "tokens"),
                 window: int = WINDOW) -> pd.DataFrame:
    """One row per group of ``by``: the group's values, ``knob`` (the optimum), ``loss``, ``status``, ``n``.

    ``table`` has one row per run (final evaluations) with columns ``by``, ``knob`` and ``loss``.
    Groups whose optimum is not measured keep a row with ``knob`` NaN and the reason in ``status``.
    """
    rows = []
    for key, group in table.groupby(list(by), sort=True):
        h, loss = profile(group, knob)
        opt = parabola_minimum(np.log(h), loss, window)
        rows.append({**dict(zip(by, np.atleast_1d(key), strict=True)), knob: float(np.exp(opt.log_h)),
                     "loss": opt.loss, "status": opt.status, "n": len(group)})
    return pd.DataFrame(rows, columns=[*by, knob, "loss", "status", "n"])


def nominal_budgets(tokens: np.ndarray, tol: float = BUDGET_TOL) -> np.ndarray:
    """Each token count replaced by the median of its budget (counts chained within ``tol`` of each other)."""
    tokens = np.asarray(tokens, float)
    order = np.argsort(tokens)
    out = np.empty_like(tokens)
    start = 0
    for i in range(1, tokens.size + 1):
        if i == tokens.size or tokens[order[i]] > tokens[order[i - 1]] * (1 + tol):
            idx = order[start:i]
            out[idx] = np.median(tokens[idx])
            start = i
    return out
