"""Bootstrap confidence intervals: resample runs, refit, take percentiles.

The original Chinchilla intervals were implausibly narrow (Besiroglu et al. 2024): a proper
bootstrap resamples whole runs (all evaluation points of a run together, since they share one
model), refits, and reports percentile intervals. Replicates are expressed as multinomial counts,
i.e. per-point weights on the original data, so many replicates are one batched L-BFGS problem.
Chunks of replicates run in a thread pool (the objectives release the GIL) with a progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from scalinglab.fitting.objective import HuberObjective
from scalinglab.fitting.optimize import LBFGSOptions, lbfgs_batched
from scalinglab.laws.registry import get_law

CHUNK = 100  # replicates per task: big enough to amortise a call, small enough for a live progress bar
REFIT_OPTIONS = LBFGSOptions(ftol=1e-12, gtol=1e-10, max_iter=500)


def replicate_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weights: each replicate draws len(unique groups) groups with replacement."""
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = inverse.max() + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)  # (B, G)
    return counts[:, inverse].astype(float)


def refit_chunk(law_name: str, x: Mapping[str, np.ndarray], loss: np.ndarray, delta: float,
                weights: np.ndarray, starts: np.ndarray, bounds) -> tuple[np.ndarray, np.ndarray]:
    """Refit every replicate (rows of ``weights``) from every start; best per replicate → (B, P), (B,)."""
    law = get_law(law_name)
    obj = HuberObjective(law, x, loss, delta, weights=weights, threads=False)
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
    """Refitted θ (n_boot, P) and objectives (n_boot,), reproducible for a seed whatever ``jobs`` is."""
    rng = np.random.default_rng(seed)
    weights = replicate_weights(groups, n_boot, rng)
    chunks = [weights[i : i + CHUNK] for i in range(0, n_boot, CHUNK)]
    jobs = min(jobs or os.cpu_count() or 1, len(chunks))
    results: list[tuple[np.ndarray, np.ndarray]] = []
    if jobs <= 1:
        for w in chunks:
            results.append(refit_chunk(law_name, x, loss, delta, w, starts, bounds))
            if progress:
                progress(len(w))
    else:
        with ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(refit_chunk, law_name, x, loss, delta, w, starts, bounds) for w in chunks]
            for fut, w in zip(futures, chunks, strict=True):
                results.append(fut.result())
                if progress:
                    progress(len(w))
    theta = np.concatenate([r[0] for r in results])
    f = np.concatenate([r[1] for r in results])
    return theta, f


def percentile_ci(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring NaN."""
    tail = 100.0 * (1.0 - level) / 2.0
    return np.nanpercentile(samples, tail, axis=0), np.nanpercentile(samples, 100.0 - tail, axis=0)
