"""Accuracy of the multi-power law's compressed loss-drop sum against the exact per-step sum.

For every bundled curve of Luo et al. (2025) (`scalinglab/data/multipowerlaw`, 25M/100M/400M models) and
the authors' published constants of that model, prints the largest |LD_compressed − LD_exact| over the
logged points (loss units), the pairs per point, for the cells used by `MultiPower` (distance cells split
inside learning-rate drops) and, for comparison, distance cells alone at several widths.

Run:  python benchmarks/multi_power_sum.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

import scalinglab
from scalinglab.console import stdout_console
from scalinglab.laws.lr_schedule import reconstruct
from scalinglab.laws.multi_power import CELL_RATIO, LOG_ETA_STEP, loss_drop_pairs

DATA = Path(scalinglab.__file__).parent / "data" / "multipowerlaw"
NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
PUBLISHED = {  # the authors' repository, src/config.py
    "25": (3.040, 0.525, 0.508, 363.8, 2.066, 0.583, 0.641),
    "100": (2.6514477, 0.60115152, 0.45295811, 437.9464276, 2.13245612, 0.59785199, 0.65523644),
    "400": (2.375, 0.654, 0.429, 523.4, 2.025, 0.594, 0.635),
}


def exact_loss_drop(eta: np.ndarray, t_pos: np.ndarray, B, C, beta, gamma) -> np.ndarray:
    """LD(t) = B·Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^-γ·S_k(t)), every step (Luo et al. 2025, Eq. 5)."""
    area = np.cumsum(eta)
    out = np.empty(t_pos.size)
    for i, t in enumerate(t_pos):
        k = np.arange(1, t + 1)
        g = 1.0 - (C * eta[k] ** -gamma * (area[t] - area[k - 1]) + 1.0) ** -beta
        out[i] = B * np.sum((eta[k - 1] - eta[k]) * g)
    return out


def compressed_loss_drop(curve, n_points: int, ratio: float, log_step: float, B, C, beta, gamma):
    point, w, eta_k, s_k = loss_drop_pairs(curve, ratio, log_step)
    g = 1.0 - (C * eta_k**-gamma * np.maximum(s_k, 0.0) + 1.0) ** -beta
    return B * np.bincount(point, weights=w * g, minlength=n_points), point.size / n_points


def main() -> None:
    variants = [("ours", CELL_RATIO, LOG_ETA_STEP), ("distance only, ratio 0.25", 0.25, np.inf),
                ("distance only, ratio 0.05", 0.05, np.inf)]
    table = Table(title="max |LD compressed − LD exact| over a curve's points (loss units); pairs per point",
                  title_justify="left")
    table.add_column("model")
    table.add_column("curve")
    for label, _, _ in variants:
        table.add_column(label, justify="right")
    worst = dict.fromkeys(v[0] for v in variants)
    t0 = time.perf_counter()
    for size, constants in PUBLISHED.items():
        p = dict(zip(NAMES, constants, strict=True))
        for path in sorted((DATA / f"csv_{size}").glob("*.csv")):
            t = pd.read_csv(path)
            c = reconstruct(np.full(len(t), path.stem), t["step"].to_numpy(), t["lr"].to_numpy())[0]
            t_pos = c.index(c.steps)
            exact = exact_loss_drop(c.eta, t_pos, p["B"], p["C"], p["beta"], p["gamma"])
            cells = []
            for label, ratio, log_step in variants:
                got, per_point = compressed_loss_drop(c, t_pos.size, ratio, log_step, p["B"], p["C"], p["beta"], p["gamma"])
                err = float(np.abs(got - exact).max())
                worst[label] = max(worst[label] or 0.0, err)
                cells.append(f"{err:.2e} ({per_point:.0f})")
            table.add_row(f"{size}M", path.stem, *cells)
    table.add_row("all", "worst", *(f"{worst[v[0]]:.2e}" for v in variants))
    stdout_console.print(table)
    stdout_console.print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
