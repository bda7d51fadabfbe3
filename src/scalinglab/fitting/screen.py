"""Screening on a stratified subsample: the many-start search sees a few thousand rows, the polish all.

A multi-start fit spends nearly all its time in the batched L-BFGS from every start of the grid,
whose only job is to find the basins (it stops at a loose tolerance); the best few optima are then
polished at tight tolerance. With millions of rows — loss curves logged at every step, or many
seeds of one (N, D) — the basins are already visible on a small, representative part of the data,
so the search runs on a weighted subsample and only the polish sees every row:

* loss curves (rows not grouped into design points): every run keeps evenly spaced rows along its
  steps, in proportion to its length (each run at least one), each kept row weighted by
  (run rows) / (kept rows), so each run weighs in the subsample what it weighs in the data;
* grouped rows (design points, ``design.py``): as many picks as design points, spread in proportion
  to their rows — with even sizes, each point's median loss, weighted by the point's rows.

The subsample objective approximates the full one (it is a quadrature of each stratum's loss
distribution), so the optima it finds are starting points, never results: the best distinct ones are
re-polished on the exact objective over every row, and the reported optimum is the exact one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.fitting.design import small_int
from scalinglab.fitting.objective import HuberObjective

__all__ = ["SCREEN_ROWS", "screening_objective", "stratified_pick"]

SCREEN_ROWS = 2_000  # rows the search sees (20 per run for 100 curves): the basins show long before that


def stratified_pick(sizes: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evenly spaced picks in each stratum, proportional to its size (at least one each).

    ``sizes`` (K,) are stratum sizes (in rows). Returns (stratum, rank within the stratum, weight) of
    every pick; a stratum's weights add up to its size.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    keep = np.minimum(sizes, np.maximum(1, np.floor(budget * sizes / max(total, 1)).astype(np.int64)))
    stratum = np.repeat(np.arange(sizes.size), keep)
    j = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)  # 0 … keep−1 in each stratum
    m, k = sizes[stratum], keep[stratum]
    rank = np.minimum(((j + 0.5) * m / k).astype(np.int64), m - 1)  # midpoints of k equal slices
    return stratum, rank, m / k


def _grouped(obj: HuberObjective) -> HuberObjective:
    d = obj.design
    counts = d.counts.astype(np.int64)
    rows_per_point = np.add.reduceat(counts, d.start[:-1])
    # As many picks as design points (the median of each when sizes are even): the search then costs
    # what a fit of the points' medians costs — one compiled pass per point, no binary searches.
    point, rank, weight = stratified_pick(rows_per_point, d.n_points)
    # the entry holding row number ``rank`` of its point, counting rows in loss order
    cum = np.cumsum(counts)
    before = np.concatenate([[0], cum])[d.start[:-1]]  # rows before each point
    entry = np.searchsorted(cum, before[point] + rank, side="right")
    rows = d.index[point]
    x = {k: v[rows] for k, v in obj.x.items()}
    return HuberObjective(obj.law, x, np.exp(d.y[entry]), obj.delta, weights=weight, threads=obj.threads)


def screening_objective(obj: HuberObjective, strata: np.ndarray | None = None, order: np.ndarray | None = None,
                        budget: int = SCREEN_ROWS) -> HuberObjective:
    """A weighted subsample of ``obj`` for the multi-start search, or ``obj`` itself when it is small.

    ``strata`` (n,) labels rows (runs) for data that are not grouped into design points; ``order`` (n,)
    sorts rows along each stratum (e.g. by step). Without design points or strata, no subsample.
    """
    if obj.weights is not None:
        return obj  # replicate or user weights: the caller asked for this exact objective
    if obj.design is not None:
        return obj if obj.design.z.size <= budget else _grouped(obj)
    n = obj.log_loss.size
    if strata is None or n <= budget:
        return obj
    order = np.arange(n) if order is None else np.asarray(order)
    codes, labels = pd.factorize(np.asarray(strata)[order])  # hashing: linear in rows
    by_stratum = order[np.argsort(small_int(codes, len(labels)), kind="stable")]  # stratum 0, 1, … in ``order``
    sizes = np.bincount(codes, minlength=len(labels))
    stratum, rank, weight = stratified_pick(sizes, budget)
    rows = by_stratum[(np.cumsum(sizes) - sizes)[stratum] + rank]
    try:
        x = obj.law.subset(obj.x, rows)
    except NotImplementedError:
        return obj
    return HuberObjective(obj.law, x, np.exp(obj.log_loss[rows]), obj.delta, weights=weight, threads=obj.threads)
