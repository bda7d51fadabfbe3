"""Bootstrap confidence intervals: resample runs, refit, take percentiles.

The original Chinchilla intervals were implausibly narrow (Besiroglu et al. 2024): a proper
bootstrap resamples whole runs (all evaluation points of a run together, since they share one
model), refits, and reports percentile intervals. Replicates are expressed as multinomial counts,
i.e. per-point weights on the original data, so many replicates are one batched L-BFGS problem.
Chunks of replicates run in a thread pool (the objectives release the GIL) with a progress bar.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.design import DesignPoints, group_rows, groupable
from scalinglab.fitting.objective import HuberObjective
from scalinglab.fitting.optimize import LBFGSOptions, lbfgs_batched
from scalinglab.laws.registry import get_law

CHUNK = 100  # replicates per task: big enough to amortise a call, small enough for a live progress bar
CHUNK_CELLS = 4_000_000  # replicates × rows per task: weights and their prefix sums stay ~100 MB a task
MAX_BOOTSTRAP = 100_000  # beyond this the percentiles no longer move; a typo (1e7) should not run for days
REFIT_OPTIONS = LBFGSOptions(ftol=1e-12, gtol=1e-10, max_iter=500)


def check_replicates(n_boot: int) -> None:
    """A clear error for a replicate count outside 0…MAX_BOOTSTRAP (before any memory is touched)."""
    if not 0 <= n_boot <= MAX_BOOTSTRAP:
        raise InputError(f"--bootstrap: {n_boot} replicates; expected 0 to {MAX_BOOTSTRAP:,} "
                         f"(percentile intervals are stable long before that)")


def chunk_size(n_rows: int) -> int:
    """Replicates per task: CHUNK, fewer for big tables so a task's (replicates × rows) weights stay bounded."""
    return max(1, min(CHUNK, CHUNK_CELLS // max(n_rows, 1)))


def replicate_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weights: each replicate draws len(unique groups) groups with replacement."""
    inverse, labels = pd.factorize(np.asarray(groups), sort=True)  # labels in np.unique order
    n_groups = len(labels)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)  # (B, G)
    return counts[:, inverse].astype(float)


def refit_chunk(law_name: str, x: Mapping[str, np.ndarray], loss: np.ndarray, delta: float,
                weights: np.ndarray, starts: np.ndarray, bounds,
                design: DesignPoints | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refit every replicate (rows of ``weights``) from every start; best per replicate → (B, P), (B,)."""
    law = get_law(law_name)
    obj = HuberObjective(law, x, loss, delta, weights=weights, threads=False, design=design)
    B, K = weights.shape[0], starts.shape[0]
    theta0 = np.tile(starts, (B, 1))
    rows = np.repeat(np.arange(B), K)
    theta, f, _ = lbfgs_batched(obj, theta0, rows=rows, bounds=bounds, options=REFIT_OPTIONS)
    f = np.where(np.isfinite(f), f, np.inf).reshape(B, K)
    best = f.argmin(axis=1)
    theta = theta.reshape(B, K, -1)[np.arange(B), best]
    return theta, f[np.arange(B), best]


def bootstrap(law_name: str, x: Mapping[str, np.ndarray], loss: np.ndarray, delta: float, groups: np.ndarray,
              starts: np.ndarray, bounds, n_boot: int, seed: int = 0, jobs: int | None = None,
              progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refitted θ (n_boot, P) and objectives (n_boot,), reproducible for a seed whatever ``jobs`` is.

    Replicate weights are drawn chunk by chunk from one generator (the same stream as one draw of all
    of them) and at most ``jobs`` + 1 chunks are alive at once, so memory does not grow with ``n_boot``.
    The rows' design points are found once and shared by every chunk.
    """
    check_replicates(n_boot)
    rng = np.random.default_rng(seed)
    inverse, labels = pd.factorize(np.asarray(groups), sort=True)  # labels in np.unique order
    n_groups = len(labels)
    loss = np.asarray(loss, dtype=float)
    size = chunk_size(loss.size)
    sizes = [min(size, n_boot - i) for i in range(0, n_boot, size)]
    law = get_law(law_name)
    design = None
    if groupable(x, loss.size):
        design = group_rows(list(x.values()), np.log(loss), repeats_only=law.name != "chinchilla")

    def weights(k: int) -> np.ndarray:
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=k)  # (k, runs)
        return counts[:, inverse].astype(float)

    jobs = min(jobs or os.cpu_count() or 1, len(sizes))
    results: list[tuple[np.ndarray, np.ndarray]] = []
    if jobs <= 1:
        for k in sizes:
            results.append(refit_chunk(law_name, x, loss, delta, weights(k), starts, bounds, design))
            if progress:
                progress(k)
    else:
        with ThreadPoolExecutor(jobs) as pool:
            pending: deque = deque()
            for k in sizes:  # submit in order (the generator's stream), keep the queue short
                pending.append((pool.submit(refit_chunk, law_name, x, loss, delta, weights(k), starts, bounds,
                                            design), k))
                while len(pending) > jobs:
                    fut, done = pending.popleft()
                    results.append(fut.result())
                    if progress:
                        progress(done)
            while pending:
                fut, done = pending.popleft()
                results.append(fut.result())
                if progress:
                    progress(done)
    theta = np.concatenate([r[0] for r in results])
    f = np.concatenate([r[1] for r in results])
    return theta, f


def percentile_ci(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring NaN.

    A replicate that overflowed to ±inf stays in: interpolating between two infinite samples gives NaN, so
    such an end falls back to the nearest sample (inf), an honest "unbounded" rather than "nan".
    """
    tail = 100.0 * (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            lo = np.where(np.isnan(lo), np.nanpercentile(samples, tail, axis=0, method="lower"), lo)
            hi = np.where(np.isnan(hi), np.nanpercentile(samples, 100.0 - tail, axis=0, method="higher"), hi)
    return lo, hi
