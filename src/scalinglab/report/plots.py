"""Fit plots (matplotlib, PNG or SVG): data, fitted law, extrapolation band, residuals.

Laws over (params, tokens) show loss against compute with the compute-optimal frontier L*(C)
extrapolated two decades past the data, its bootstrap band, and held-out points; other laws show
the law's curve over its own input (compute, or step for loss curves). The lower panel is the
residual log L̂ − log L of every point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.atomic import atomic_write
from scalinglab.fitting.bootstrap import percentile_ci
from scalinglab.fitting.result import FitResult
from scalinglab.laws.registry import get_law
from scalinglab.planning.predict import log_loss_batch, theta_samples

EXTRAPOLATE_DECADES = 2.0
BAND_SAMPLES = 200  # bootstrap replicates drawn for the band (percentiles are stable by then)


def _frontier(law, theta, flops):
    from scalinglab.planning.compute_optimal import _optimal_rows

    return np.array([_optimal_rows(law, theta, c)[1] for c in flops]).T  # (S, len(flops))


def plot_fit(fit: FitResult, table: pd.DataFrame, path: str | Path, held: pd.DataFrame | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    law = get_law(fit.law)
    path = Path(path)
    theta = np.asarray(fit.theta, dtype=float)
    inputs = {c: table[c].to_numpy() for c in law.inputs}
    resid = log_loss_batch(law, theta, inputs)[0] - np.log(table["loss"].to_numpy())
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7.5, 7), height_ratios=[3, 1], sharex=False)
    samples = theta_samples(law, fit)
    if samples is not None and len(samples) > BAND_SAMPLES:
        samples = samples[np.random.default_rng(0).choice(len(samples), BAND_SAMPLES, replace=False)]

    if set(law.inputs) == {"params", "tokens"}:
        x = table["flops"].to_numpy()
        sc = ax.scatter(x, table["loss"], c=np.log10(table["params"]), cmap="viridis", s=14, label="runs")
        fig.colorbar(sc, ax=ax, label="log10 N")
        hi_c = max(x.max(), held["flops"].max() if held is not None else 0) * 10**EXTRAPOLATE_DECADES
        c_grid = np.logspace(np.log10(x.min()), np.log10(hi_c), 40)
        ax.plot(c_grid, _frontier(law, theta, c_grid)[0], "k-", lw=1.5, label="compute-optimal L*(C)")
        if samples is not None:
            band = _frontier(law, samples, c_grid)
            lo, hi = percentile_ci(band, fit.bootstrap.level)  # the fit's --level
            ax.fill_between(c_grid, lo, hi, color="k", alpha=0.15, label=f"{fit.bootstrap.level:.0%} bootstrap band")
        ax.set_xlabel("compute C = 6ND (FLOPs)")
        axr.set_xlabel("compute C (FLOPs)")
        xr = x
    else:
        col = "step" if "step" in law.inputs else law.inputs[0]
        groups = table["run"] if "run" in table.columns and col == "step" else pd.Series(["all"] * len(table))
        xr = table[col].to_numpy()
        for name in pd.unique(groups):
            sel = (groups == name).to_numpy()
            sub = table[sel].sort_values(col)
            ax.scatter(sub[col], sub["loss"], s=8, alpha=0.6)
            pred = np.exp(log_loss_batch(law, theta, {c: sub[c].to_numpy() for c in law.inputs})[0])
            ax.plot(sub[col], pred, lw=1.2, label=str(name) if col == "step" else "fit")
        ax.set_xlabel(col)
        axr.set_xlabel(col)
    if held is not None:
        hx = held["flops"] if set(law.inputs) == {"params", "tokens"} else held[law.inputs[0]]
        ax.scatter(hx, held["loss"], marker="*", s=90, c="red", label="held out")
    ax.set_xscale("log")
    ax.set_ylabel("loss")
    p = ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    ax.set_title(f"{fit.law}: {p}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, which="both")
    axr.scatter(xr, resid, s=8)
    axr.axhline(0, color="k", lw=0.8)
    axr.set_xscale("log")
    axr.set_ylabel("log residual")
    axr.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
    return path
