"""Compiled path of the Chinchilla fit: fused objective + gradient, and every start's L-BFGS in one call.

The multi-start fit evaluates Σ_i w_i·Huber_δ(log(E + A·N_i^-α + B·D_i^-β) − log L_i) and its
gradient for thousands of parameter rows. In NumPy every intermediate is an (S, n) array written to
and read from memory; the kernels in ``fused_kernels.py`` keep one row in registers, compute each
power once per distinct N and D, and run the whole L-BFGS of every start without returning to
Python. Rows are split across a thread pool (the kernels release the GIL) rather than numba's own
threads, whose spinning workers slow every later call on a busy two-core machine. Agreement with the
NumPy path is tested to 1e-12, and the compiled L-BFGS against the NumPy lock-step one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from scalinglab.fitting.design import DesignPoints, group_rows, segment_prefix

_POOL = None
PARALLEL_MIN_WORK = 100_000  # rows × points below which splitting across threads does not pay
CHUNKS_PER_THREAD = 8  # L-BFGS rows take 1–500 iterations: small slices keep the threads balanced


def _kernels():
    from scalinglab.fitting import fused_kernels  # compiles on first use (cached on disk)

    return fused_kernels


def _threads() -> int:
    return os.cpu_count() or 1


def _run_sliced(S: int, work: int, parallel: bool, chunks_per_thread: int, call) -> None:
    """Call ``call(a, b)`` on slices [a, b) of S rows, across the pool when the work is worth it."""
    global _POOL
    threads = _threads()
    if not parallel or threads < 2 or work < PARALLEL_MIN_WORK:
        call(0, S)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(threads, thread_name_prefix="scalinglab-fit")
    bounds = np.unique(np.linspace(0, S, threads * chunks_per_thread + 1).astype(int))
    jobs = [_POOL.submit(call, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for job in jobs:
        job.result()


class ChinchillaData:
    """The data of one Chinchilla fit in the layout the kernels take: design points, distinct N and D indexed.

    Rows sharing (N, D) are one design point (``design.py``): points with one loss value are summed
    per point with their row counts (or summed bootstrap weights) as weights; points with several
    loss values through sorted offsets and prefix sums, in O(log m) per point.
    """

    def __init__(self, logN, logD, log_loss, delta, weights=None, design: DesignPoints | None = None):
        logN = np.asarray(logN, dtype=np.float64)
        logD = np.asarray(logD, dtype=np.float64)
        log_loss = np.asarray(log_loss, dtype=np.float64)
        self.delta = float(delta)
        d = design if design is not None else group_rows([logN, logD], log_loss)
        sizes = np.diff(d.start)
        single, multi = np.flatnonzero(sizes == 1), np.flatnonzero(sizes > 1)
        points = np.concatenate([single, multi])
        rows = d.index[points]
        self.logN = np.ascontiguousarray(logN[rows])
        self.logD = np.ascontiguousarray(logD[rows])
        self.uN, iN = np.unique(self.logN, return_inverse=True)
        self.uD, iD = np.unique(self.logD, return_inverse=True)
        self.iN, self.iD = iN.astype(np.int64), iD.astype(np.int64)
        w = d.entry_weights(weights)  # (R, U)
        self.log_loss = np.ascontiguousarray(d.y[d.start[single]])
        self.weights = np.ascontiguousarray(w[:, d.start[single]])
        # several-loss points: their entries contiguous, then restarting prefix sums
        self.start2 = np.concatenate([[0], np.cumsum(sizes[multi])]).astype(np.int64)
        ent = np.arange(self.start2[-1]) + np.repeat(d.start[multi] - self.start2[:-1], sizes[multi])
        self.z2 = np.ascontiguousarray(d.z[ent])
        self.c2 = np.ascontiguousarray(d.centre[multi])
        we = w[:, ent]
        self.pre = np.ascontiguousarray(np.stack([segment_prefix(v, self.start2)
                                                  for v in (we, we * self.z2, we * self.z2 * self.z2)]))
        self.n_points = points.size
        self.n_rows = d.n_rows

    def rows(self, S: int, rows) -> np.ndarray:
        if self.weights.shape[0] <= 1 or rows is None:
            return np.zeros(S, dtype=np.int64)
        return np.ascontiguousarray(rows, dtype=np.int64)

    def args(self):
        return (self.uN, self.iN, self.uD, self.iD, self.logN, self.logD, self.log_loss, self.delta, self.weights,
                self.c2, self.start2, self.z2, self.pre)

    def value_and_grad(self, theta, rows=None, parallel=True):
        k = _kernels()
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        S = theta.shape[0]
        rows = self.rows(S, rows)
        out_f, out_g = np.empty(S), np.empty((S, 5))
        args = self.args()
        _run_sliced(S, S * self.n_points, parallel, 1,
                    lambda a, b: k.objective_rows(theta[a:b], rows[a:b], *args, out_f[a:b], out_g[a:b]))
        return out_f, out_g

    def lbfgs(self, theta0, rows, lo, hi, max_iter, gtol, ftol, memory, parallel=True):
        """Every start's L-BFGS (the algorithm of ``optimize.lbfgs_batched``), compiled."""
        k = _kernels()
        theta0 = np.ascontiguousarray(theta0, dtype=np.float64)
        S = theta0.shape[0]
        rows = self.rows(S, rows)
        lo = np.ascontiguousarray(lo, dtype=np.float64)
        hi = np.ascontiguousarray(hi, dtype=np.float64)
        out_x, out_f, out_it = np.empty((S, 5)), np.empty(S), np.zeros(S, dtype=np.int64)
        args = self.args()
        # ~50 iterations per start: the work is far above one objective call's
        _run_sliced(S, 50 * S * self.n_points, parallel, CHUNKS_PER_THREAD,
                    lambda a, b: k.lbfgs_rows(theta0[a:b], rows[a:b], lo, hi, *args, int(max_iter), float(gtol),
                                              float(ftol), int(memory), out_x[a:b], out_f[a:b], out_it[a:b]))
        return out_x, out_f, out_it

