"""Steps and tokens each run needed to reach a target loss, read off its evaluation curve.

The steps/batch trade-off of McCandlish et al. (2018, §2.3) is measured at a fixed target loss: for
every run, the first crossing of the target by its validation-loss curve, interpolated linearly in
(log step, loss) between the two evaluations around it. Runs that never reach the target are left out
(their row says so). Tokens follow from the run's tokens per step.

Caveat: on a decaying schedule (cosine, WSD) an intermediate evaluation is not the end of a shorter
run, so a crossing mid-schedule overstates the steps a run tuned for that length would need.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.errors import InputError

__all__ = ["crossing", "steps_to_target", "default_targets"]


def crossing(steps: np.ndarray, loss: np.ndarray, target: float) -> float:
    """First step (interpolated in log step) where ``loss`` falls to ``target``; NaN if it never does."""
    steps, loss = np.asarray(steps, float), np.asarray(loss, float)
    order = np.argsort(steps)
    steps, loss = steps[order], loss[order]
    below = np.flatnonzero(loss <= target)
    if below.size == 0:
        return float("nan")
    j = int(below[0])
    if j == 0:
        return float(steps[0])  # reached by the first evaluation: the best bound the curve gives
    s0, s1, l0, l1 = np.log(steps[j - 1]), np.log(steps[j]), loss[j - 1], loss[j]
    return float(np.exp(s0 + (s1 - s0) * (l0 - target) / (l0 - l1)))


def default_targets(curves: pd.DataFrame) -> dict[float, float]:
    """Per model size: a loss that at least half of the batch sizes reach with their best learning rate.

    For each (N, B) the best final loss over the learning rates (McCandlish et al. tune η per B); the
    target of N is the upper median of those over B. The worst would be easier still, but on short
    budgets the largest batches barely leave the initial plateau, and a target there measures only the
    steps to leave it.
    """
    finals = curves.sort_values("step").groupby("run").tail(1)
    best = finals.groupby(["params", "batch_size"])["loss"].min()
    return {float(n): float(np.sort(v.to_numpy())[len(v) // 2]) for n, v in best.groupby(level=0)}


def steps_to_target(curves: pd.DataFrame, target: float | dict[float, float] | None = None) -> pd.DataFrame:
    """One row per run: run, params, batch_size, lr, target, step (S to target), tokens (E·T), reached.

    ``curves`` is a run table with every evaluation (``run, params, step, tokens, loss, batch_size``);
    ``target`` one loss for every run, a {params: loss} map, or None for :func:`default_targets`.
    """
    need = [c for c in ("run", "params", "step", "tokens", "loss", "batch_size") if c not in curves.columns]
    if need:
        raise InputError(f"steps to target: the run table has no '{need[0]}' column (need every evaluation of "
                         "every run, with step, tokens and batch_size)")
    targets = default_targets(curves) if target is None else target
    rows = []
    for run, g in curves.groupby("run", sort=False):
        n = float(g["params"].iloc[0])
        t = targets.get(n) if isinstance(targets, dict) else float(targets)
        if t is None:
            continue
        s = crossing(g["step"].to_numpy(), g["loss"].to_numpy(), t)
        per_step = float((g["tokens"] / g["step"]).median())
        rows.append({"run": run, "params": n, "batch_size": float(g["batch_size"].iloc[0]),
                     "lr": float(g["lr"].iloc[0]) if "lr" in g else float("nan"), "target": t, "step": s,
                     "tokens": s * per_step, "reached": bool(np.isfinite(s))})
    return pd.DataFrame(rows, columns=["run", "params", "batch_size", "lr", "target", "step", "tokens", "reached"])
