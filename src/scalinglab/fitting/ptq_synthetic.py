"""A synthetic ladder of quantized evaluations from Kumar et al.'s published constants (clearly synthetic).

For recovery tests and for the precision walk-through when no measured ladder is at hand: runs of
N = 30M–220M parameters (the paper's range) at tokens per parameter from ≤ 10 to ≥ 200, each
"quantized" at several bit widths. The float loss follows the paper's loss law (its App. K Table 2
constants, :data:`~scalinglab.laws.ptq.KUMAR_BASE`) and the increase follows Eq. 2 with
:data:`~scalinglab.laws.ptq.KUMAR_PTQ`. Noise:

- ``run_noise``: multiplicative log-normal on each run's float loss (seed-to-seed spread);
- ``delta_noise``: multiplicative log-normal on each increase (rounding luck varies from run to run);
- ``eval_noise``: additive normal on each quantized loss (finite held-out set; the float loss is evaluated
  on the same tokens, so only the difference's own noise enters). Rows it pushes to δ ≤ 0 stay in the
  table, as a measured ladder would have them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalinglab.laws.ptq import KUMAR_BASE, KUMAR_PTQ, delta_ptq

SIZES = (30e6, 60e6, 120e6, 220e6)
TOKENS_PER_PARAM = (5.0, 400.0)
BITS = (3, 4, 5, 6)


def kumar_base_loss(N, D, base: dict | None = None) -> np.ndarray:
    """L(N, D) = A·N^−α + B·D^−β + E with the paper's constants (or ``base``)."""
    p = base or KUMAR_BASE
    N, D = np.asarray(N, float), np.asarray(D, float)
    return p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"] + p["E"]


def synthetic_quant_ladder(sizes=SIZES, ratios_per_size: int = 5, tokens_per_param=TOKENS_PER_PARAM, bits=BITS,
                           run_noise: float = 0.005, delta_noise: float = 0.05, eval_noise: float = 1e-4,
                           seed: int = 0, ptq: dict | None = None, base: dict | None = None) -> pd.DataFrame:
    """One row per (run, bits): run, params, tokens, bits, loss, loss_float, method (``synthetic``).

    Each size gets ``ratios_per_size`` token multipliers spread over ``tokens_per_param``; no two runs share a
    D/N (the largest is one run, for a hold-out).
    """
    rng = np.random.default_rng(seed)
    # Every run its own D/N: the ratios interleave across sizes, so each size spans the whole range.
    ratios = np.geomspace(*tokens_per_param, len(sizes) * ratios_per_size)
    rows = []
    for i, N in enumerate(sizes):
        for ratio in ratios[i :: len(sizes)]:
            D = N * ratio
            loss_float = float(kumar_base_loss(N, D, base) * np.exp(run_noise * rng.standard_normal()))
            run = f"N{N / 1e6:.0f}M-x{ratio:.1f}"
            for P in bits:
                delta = float(delta_ptq(ptq or KUMAR_PTQ, N, D, P)) * np.exp(delta_noise * rng.standard_normal())
                loss = loss_float + delta + eval_noise * rng.standard_normal()
                rows.append({"run": run, "params": N, "tokens": D, "bits": float(P), "loss": loss,
                             "loss_float": loss_float, "method": "synthetic"})
    table = pd.DataFrame(rows)
    table.attrs["source"] = "synthetic (Kumar et al. 2024 constants)"
    return table
