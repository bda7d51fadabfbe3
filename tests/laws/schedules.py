"""Synthetic learning-rate schedules and loss curves for the schedule-law tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

PEAK, FLOOR, WARMUP = 3e-4, 3e-5, 500


def schedule(kind: str, total: int) -> np.ndarray:
    """η per step 0..total−1 with a linear warm-up of WARMUP steps (as in Luo et al.'s repository)."""
    s = np.arange(total, dtype=float)
    frac = np.clip((s - WARMUP) / (total - WARMUP), 0.0, 1.0)
    if kind == "constant":
        eta = np.full(total, PEAK)
    elif kind == "cosine":
        eta = FLOOR + 0.5 * (PEAK - FLOOR) * (1 + np.cos(np.pi * frac))
    elif kind == "wsd":  # stable, then exponential decay over the last 20 %
        d = np.clip((frac - 0.8) / 0.2, 0.0, 1.0)
        eta = PEAK ** (1 - d) * FLOOR**d
    elif kind.startswith("step"):  # two-stage: drop to lr_b at half the run
        eta = np.where(frac < 0.5, PEAK, float(kind[4:]) * 1e-5)
    elif kind == "cyclic":  # non-monotone: cosine with warm restarts
        eta = FLOOR + 0.5 * (PEAK - FLOOR) * (1 + np.cos(np.pi * ((2 * frac) % 1.0)))
    else:
        raise ValueError(kind)
    eta[:WARMUP] = np.linspace(0.0, PEAK, WARMUP, endpoint=False)
    return eta


def curve_table(kinds, total=8000, every=125) -> pd.DataFrame:
    """Rows (run, step, lr) sampled every ``every`` steps from the end of warm-up; no loss yet.

    With the defaults a two-stage drop (at step 4250) falls on a sample, like the real wsdcon curves.
    """
    frames = []
    for kind in kinds:
        eta = schedule(kind, total)
        steps = np.arange(WARMUP, total, every)
        frames.append(pd.DataFrame({"run": kind, "step": steps, "lr": eta[steps]}))
    return pd.concat(frames, ignore_index=True)


def exact_loss_drop(eta: np.ndarray, t: int, B, C, beta, gamma) -> float:
    """LD(t) summed step by step (Luo et al. 2025, Eq. 5); position 0 of ``eta`` is the end of warm-up."""
    area = np.cumsum(eta)
    k = np.arange(1, t + 1)
    s_k = area[t] - area[k - 1]
    g = 1.0 - (C * eta[k] ** -gamma * s_k + 1.0) ** -beta
    return B * np.sum((eta[k - 1] - eta[k]) * g)
