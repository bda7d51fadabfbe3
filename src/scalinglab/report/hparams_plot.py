"""One figure of a hyperparameter sweep (matplotlib, PNG or SVG).

Panels: (a) loss against η per (N, D), each η's best over B, with the fitted η*(N, D) marked;
(b) loss against B per (N, D), each B's best over η, with B*(D) marked; (c) steps to the target loss
against B per size with McCandlish et al.'s S = S_min·(1 + B_crit/B) and B_crit (dashed) beside the
gradient noise scale B_simple at the target (dotted); (d) B_simple at every evaluation against the
tokens seen, with the critical_batch fits over D and over N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.laws.registry import get_law
from scalinglab.planning.hparams import law_value

__all__ = ["plot_hparams"]


def _bowl(ax, finals, hp, knob, law_key, label):
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups = list(finals.groupby(["params", "tokens"], sort=True))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(groups)))
    for color, ((n, d), g) in zip(colors, groups, strict=True):
        best = g.groupby(knob)["loss"].min()
        ax.plot(best.index, best.values, "o-", color=color, ms=3, lw=1, label=f"N={n:.3g}, D={d:.2g}")
        if hp.get(law_key):
            v = law_value(hp[law_key], {"params": n, "tokens": d}, label)["value"]
            ax.axvline(v, color=color, lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(sorted(finals[knob].unique()))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(knob)
    ax.set_ylabel("final validation loss")
    if hp.get(law_key):
        ax.set_title(f"{hp[law_key]['formula']} (dashed)", fontsize=9)
    ax.legend(fontsize=6)


def plot_hparams(finals: pd.DataFrame, hp: dict, path: str | Path, noise: pd.DataFrame | None = None) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalinglab.fitting.sweep_optima import nominal_budgets

    path = Path(path)
    finals = finals.assign(tokens=nominal_budgets(finals["tokens"].to_numpy()))  # one D per budget, as fitted
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    (a, b), (c, d) = axes
    if "lr" in finals.columns:
        _bowl(a, finals, hp, "lr", "optimal_lr", "η*")
    if "batch_size" in finals.columns:
        _bowl(b, finals, hp, "batch_size", "optimal_batch", "B*")
    trade = hp.get("tradeoff") or {}
    stt = pd.DataFrame(trade.get("steps_to_target", []))
    for row in trade.get("per_size", []):
        g = stt[(stt["params"] == row["params"]) & stt["reached"]]
        best = g.groupby("batch_size")["step"].min()
        line = c.plot(best.index, best.values, "o", ms=4, label=f"N={row['params']:.3g} (loss {row['target']:.3f})")[0]
        B = np.geomspace(best.index.min() / 2, best.index.max() * 2, 100)
        c.plot(B, row["S_min"] * (1 + row["B_crit"] / B), color=line.get_color(), lw=1)
        c.axvline(row["B_crit"], color=line.get_color(), ls="--", lw=0.8)
        if row.get("B_simple") == row.get("B_simple") and row.get("B_simple"):
            c.axvline(row["B_simple"], color=line.get_color(), ls=":", lw=1.2)
    c.set(xscale="log", yscale="log", xlabel="batch size (sequences)", ylabel="steps to target loss",
          xticks=sorted(stt["batch_size"].unique()) if len(stt) else [],
          title="S = S_min(1 + B_crit/B); B_crit dashed, B_simple dotted")
    c.title.set_fontsize(9)
    c.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    c.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if trade.get("per_size"):
        c.legend(fontsize=7)
    if noise is not None and len(noise):
        sc = d.scatter(noise["tokens"], noise["b_simple"], c=np.log10(noise["params"]), s=6, cmap="viridis")
        fig.colorbar(sc, ax=d, label="log10 N")
        crit = hp.get("critical_batch") or {}
        for col, fit in (crit.get("fits") or {}).items():
            law = get_law(fit["law"])
            if col == "tokens":
                x = np.geomspace(noise["tokens"].min(), noise["tokens"].max(), 50)
                y = np.exp(law.log_predict(np.asarray(fit["theta"])[None], law.prepare({"tokens": x}))[0])
                d.plot(x, y, "k-", lw=1, label=f"c·D^a, a = {fit['params']['a']:.2f}")
        d.set(xscale="log", yscale="log", xlabel="tokens seen", ylabel="gradient noise scale B_simple (sequences)")
        if crit:
            d.set_title(f"critical batch explained better by {'D' if crit['better'] == 'tokens' else 'N'}", fontsize=9)
        d.legend(fontsize=7)
    else:
        d.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
