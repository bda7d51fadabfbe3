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
