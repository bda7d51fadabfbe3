"""Synthetic run tables from known constants, for parameter-recovery tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.laws.registry import get_law

# Hoffmann et al. 2022, Eq. 10 (their Approach 3 fit).
CHINCHILLA_PUBLISHED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_grid(n_sizes: int = 12, n_tokens: int = 20, noise: float = 0.01, seed: int = 0,
                    params: dict | None = None, n_range=(7e7, 1.6e10), tokens_per_param=(2.0, 200.0)) -> pd.DataFrame:
    """n_sizes × n_tokens runs spanning the given ranges, with multiplicative log-normal noise."""
    params = params or CHINCHILLA_PUBLISHED
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(*n_range, n_sizes), n_tokens)
    ratio = np.tile(np.geomspace(*tokens_per_param, n_tokens), n_sizes)
    D = N * ratio
    law = get_law("chinchilla")
    loss = law.predict(params, {"params": N, "tokens": D}) * np.exp(noise * rng.standard_normal(N.size))
    table = pd.DataFrame({"run": [f"r{i}" for i in range(N.size)], "params": N, "tokens": D,
                          "flops": 6 * N * D, "loss": loss})
    table.attrs["source"] = "synthetic"
    table.attrs["row_numbers"] = np.arange(1, len(table) + 1)
    return table


# Tissue et al. 2024 law on synthetic schedules: constants of the order the paper reports.
TISSUE_TRUTH = {"L0": 2.8, "A": 0.6, "alpha": 0.45, "C": 0.5}
SCHEDULES = ("cosine", "wsd", "constant", "step")


def _eta(kind: str, total: int, warmup: int, peak: float) -> np.ndarray:
    """η per step 0…total−1: linear warm-up, then the schedule ``kind`` down to peak/10."""
    s = np.arange(total, dtype=float)
    frac = np.clip((s - warmup) / (total - warmup), 0.0, 1.0)
    floor = 0.1 * peak
    if kind == "cosine":
        eta = floor + 0.5 * (peak - floor) * (1 + np.cos(np.pi * frac))
    elif kind == "wsd":  # stable, then exponential decay over the last 20 %
        d = np.clip((frac - 0.8) / 0.2, 0.0, 1.0)
        eta = peak ** (1 - d) * floor**d
    elif kind == "step":  # drop to the floor at half the run
        eta = np.where(frac < 0.5, peak, floor)
    else:
        eta = np.full(total, peak)
    eta[:warmup] = np.linspace(0.0, peak, warmup, endpoint=False)
    return eta


def schedule_curves(n_runs: int = 100, rows_per_run: int = 100, total_steps: int = 100_000, warmup: int = 1_000,
                    noise: float = 0.01, seed: int = 0, params: dict | None = None) -> pd.DataFrame:
    """Loss curves (run, step, lr, loss) of ``n_runs`` schedules, each logged ``rows_per_run`` times.

    Every run trains ``total_steps`` steps; logging is evenly spaced after warm-up (every step when
    ``rows_per_run`` = total_steps − warmup), so larger tables are the same curves logged more densely.
    Losses follow the Tissue et al. (2024) law with multiplicative log-normal noise.
    """
    from scalinglab.laws.lr_schedule import Tissue

    params = params or TISSUE_TRUTH
    rng = np.random.default_rng(seed)
    rows_per_run = min(rows_per_run, total_steps - warmup)
    steps = np.unique(np.linspace(warmup, total_steps - 1, rows_per_run).round().astype(np.int64))
    peaks = np.geomspace(1e-4, 1e-3, n_runs)
    run = np.repeat(np.arange(n_runs), steps.size)
    lr = np.concatenate([_eta(SCHEDULES[r % len(SCHEDULES)], total_steps, warmup, peaks[r])[steps]
                         for r in range(n_runs)])
    step = np.tile(steps, n_runs)
    names = np.array([f"run{r:03d}" for r in range(n_runs)])[run]
    law = Tissue()
    loss = law.predict(params, {"run": names, "step": step, "lr": lr})
    loss = loss * np.exp(noise * rng.standard_normal(loss.size))
    return pd.DataFrame({"run": names, "step": step, "lr": lr, "loss": loss})
