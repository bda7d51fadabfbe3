"""Design points: rows that share the law's inputs share one prediction, and their Huber sum collapses.

The objective is f(θ) = Σ_i w_i·Huber_δ(p_i(θ) − y_i) with y_i = log L_i (Hoffmann et al. 2022, App. D.2).
For a law whose prediction depends only on a row's own (prepared) inputs, rows with identical inputs
— a design point g, e.g. one (N, D) trained with several seeds, or a tracker table that logs the same
point many times — share p_g. Two exact reductions follow:

* rows with identical inputs **and** identical loss are one *entry* with an integer count (bootstrap
  weights add up): Σ over the rows equals count·Huber of the entry, term for term;
* entries of one design point with different losses still need no per-row work. With the entries'
  offsets z_u = y_u − c_g from a centre c_g sorted, and q = p_g − c_g, the residual r_u = q − z_u is
  quadratic exactly for z_u ∈ [q − δ, q + δ], a contiguous range found by binary search; below it
  Huber is δ·(q − z_u − δ/2), above it δ·(z_u − q − δ/2). So with prefix sums W, Z1, Z2 of w, w·z,
  w·z² over the sorted entries,

      Σ_u w_u Huber_δ(q − z_u) = δ·(W_lo·(q − δ/2) − Z1_lo) + δ·(Z1_hi − W_hi·(q + δ/2))
                                 + ½·(W_in·q² − 2q·Z1_in + Z2_in),
      Σ_u w_u ψ(q − z_u)       = δ·W_lo − δ·W_hi + W_in·q − Z1_in            (ψ = Huber' = clip(·, ±δ))

  (lo / in / hi: entries below, inside and above the quadratic range). This is the same function —
  not an approximation — evaluated in O(log m_g) per design point instead of O(m_g). Centring on the
  group mean keeps q and z small, so the sums do not cancel; agreement with the row-by-row sum is
  tested to 1e-12.

A fit of millions of rows over a few hundred design points thus costs what a fit of the design
points costs, after one O(n log n) sort. Laws whose prediction of a row depends on other rows
(the loss-curve laws read the whole schedule) are prepared on all rows first; grouping then acts on
their prepared per-row inputs, which is where identical predictions are decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["DesignPoints", "group_rows", "groupable", "segment_prefix", "small_int"]


def groupable(x: Mapping[str, object], n: int) -> bool:
    """True when every prepared input is a plain (n,) array: the prediction of a row is a function of it."""
    return bool(x) and all(isinstance(v, np.ndarray) and v.shape == (n,) for v in x.values())


def small_int(codes: np.ndarray, k: int) -> np.ndarray:
    """Codes 0…k−1 in the narrowest integer type: numpy then sorts them stably in linear time."""
    # numpy sorts 8/16-bit integers stably by radix (linear time); wider ones by merge sort
    for dt in (np.int16, np.int32):
        if k < np.iinfo(dt).max:
            return codes.astype(dt)
    return codes.astype(np.int64)


def segment_prefix(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Prefix sums that restart at every segment: (R, U) → (R, U + G).

    Segment g (entries start[g]:start[g+1]) owns slots start[g] + g … start[g+1] + g; its first slot is 0
    and slot start[g] + g + k holds the sum of its first k entries.
    """
    R, U = values.shape
    G = start.size - 1
    seg = np.repeat(np.arange(G), np.diff(start))
    out = np.zeros((R, U + G))
    out[:, np.arange(U) + seg + 1] = values
    out = np.cumsum(out, axis=1)
    base = out[:, start[:-1] + np.arange(G)]  # cumulative total before each segment
    out -= np.repeat(base, np.diff(start) + 1, axis=1)
    return out


@dataclass(frozen=True)
class DesignPoints:
    """Rows grouped by identical inputs (design points) and, inside, by identical loss (entries)."""

    index: np.ndarray  # (G,) one row of each design point (its inputs are the point's inputs)
    start: np.ndarray  # (G + 1,) entries of point g are start[g]:start[g+1], sorted by z
    y: np.ndarray  # (U,) log loss of each entry
    z: np.ndarray  # (U,) y − centre of its point, increasing within the point
    centre: np.ndarray  # (G,) mean log loss of the point's rows
    counts: np.ndarray  # (U,) rows per entry
    entry: np.ndarray  # (n,) entry of each row

    @property
    def n_points(self) -> int:
        return self.index.size

    @property
    def n_rows(self) -> int:
        return self.entry.size

    def entry_weights(self, weights: np.ndarray | None) -> np.ndarray:
        """(R, U) summed row weights per entry; None → the row counts, (1, U)."""
        if weights is None:
            return self.counts[None, :].astype(float)
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        E = sparse.csr_matrix((np.ones(self.n_rows), (np.arange(self.n_rows), self.entry)),
                              shape=(self.n_rows, self.z.size))
        return np.asarray((E.T @ w.T).T)

    def prefix(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(3, R, U + G) restarting prefix sums of w, w·z, w·z² (see :func:`segment_prefix`)."""
        w = self.entry_weights(weights)
        return np.stack([segment_prefix(v, self.start) for v in (w, w * self.z, w * self.z * self.z)])

    def huber(self, pred: np.ndarray, delta: float, prefix: np.ndarray, rep: np.ndarray | None = None):
        """Σ_i w_i Huber_δ(pred_g(i) − y_i) per row of pred (S, G), and ψ summed per design point (S, G).

        ``rep`` (S,) names the weight row (replicate) of each θ row; None uses row 0.
        """
        S, G = pred.shape
        rep = np.zeros(S, dtype=np.int64) if rep is None else np.asarray(rep)
        q = pred - self.centre
        h = float(np.abs(self.z).max(initial=0.0)) + 1.0  # every |z| < h: clipped queries keep their rank
        span = 2.0 * h
        g = np.arange(G)
        keys = self.z + np.repeat(g, np.diff(self.start)) * span  # increasing across all points
        lo = np.searchsorted(keys, (g * span + np.clip(q - delta, -h, h)).ravel(), "left").reshape(S, G)
        hi = np.searchsorted(keys, (g * span + np.clip(q + delta, -h, h)).ravel(), "right").reshape(S, G)
        last = self.start[1:] + g  # slot of each point's total
        r = rep[:, None]
        W, Z1, Z2 = (prefix[k] for k in range(3))
        w_lo, z_lo = W[r, lo + g], Z1[r, lo + g]
        w_hi_cum, z_hi_cum, z2_hi_cum = W[r, hi + g], Z1[r, hi + g], Z2[r, hi + g]
        w_in, z_in, z2_in = w_hi_cum - w_lo, z_hi_cum - z_lo, z2_hi_cum - Z2[r, lo + g]
        w_up, z_up = W[r, last] - w_hi_cum, Z1[r, last] - z_hi_cum
        f = (delta * (w_lo * (q - 0.5 * delta) - z_lo) + delta * (z_up - w_up * (q + 0.5 * delta))
             + 0.5 * (w_in * q * q - 2.0 * q * z_in + z2_in))
        psi = delta * (w_lo - w_up) + w_in * q - z_in
        return f.sum(axis=1), psi


def group_rows(columns: Sequence[np.ndarray], log_loss: np.ndarray, repeats_only: bool = False) -> DesignPoints | None:
    """Group rows by identical values in ``columns`` (the prepared inputs), then by identical ``log_loss``.

    Linear-time hashing for the groups, one O(n log n) sort of the losses; design points come out in
    order of their group code, entries sorted by loss inside each. With ``repeats_only``, None (before
    any sorting) when every row is its own design point.
    """
    log_loss = np.asarray(log_loss, dtype=float)
    n = log_loss.size
    key = np.zeros(n, dtype=np.int64)
    k = 1
    for col in columns:
        codes, uniques = pd.factorize(np.asarray(col), sort=False)
        key, ids = pd.factorize(key * len(uniques) + codes, sort=False)  # stays < n: no overflow
        k = len(ids)
    if repeats_only and k == n:
        return None
    order = np.argsort(log_loss)  # ties are the same value: any order among them is fine
    order = order[np.argsort(small_int(key[order], k), kind="stable")]
    ps, ys = key[order], log_loss[order]
    new_point = np.empty(n, dtype=bool)
    new_point[0] = True
    np.not_equal(ps[1:], ps[:-1], out=new_point[1:])
    new_entry = new_point.copy()
    new_entry[1:] |= ys[1:] != ys[:-1]
    point_rows = np.flatnonzero(new_point)
    entry_rows = np.flatnonzero(new_entry)
    sizes = np.diff(np.append(point_rows, n))
    centre = np.add.reduceat(ys, point_rows) / sizes
    entry_sorted = np.cumsum(new_entry) - 1
    entry = np.empty(n, dtype=np.int64 if n >= 2**31 else np.int32)
    entry[order] = entry_sorted
    entry_point = np.cumsum(new_point)[entry_rows] - 1
    y = ys[entry_rows]
    return DesignPoints(
        index=order[point_rows], start=np.searchsorted(entry_point, np.arange(point_rows.size + 1)),
        y=y, z=y - centre[entry_point], centre=centre, counts=np.diff(np.append(entry_rows, n)), entry=entry,
    )
