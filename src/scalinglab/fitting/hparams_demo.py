"""The demo's hyperparameter part: fit η*, B*, the batch trade-off and B_crit from the bundled sweep,
then say how to train the next rung of that ladder (2× the largest size, 2× the largest budget)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from scalinglab import data as bundled
from scalinglab.fitting.hparams import HparamsConfig, fit_hparams
from scalinglab.fitting.hparams_file import save_hparams
from scalinglab.fitting.sweep_optima import nominal_budgets
from scalinglab.planning.hparams import plan_hparams
from scalinglab.report.hparams import print_hparams_fit, print_hparams_plan

SWEEP = "hparams_sweep/bstar.csv"
NEXT_RUNG = 2.0  # the planned run: this many times the sweep's largest N and largest D


def load_bundled_sweep():
    """(final row per run, every evaluation, B_simple per evaluation) of the bundled Shakespeare sweep."""
    from scalinglab.fitting.hparams import load_sweep

    return load_sweep(bundled.path(SWEEP))


def run_hparams_part(out: Path, console: Console, bootstrap: int = 200) -> dict:
    finals, curves, noise = load_bundled_sweep()
    console.print(Rule("how to train it: learning rate and batch size from a bundled Shakespeare/Milton sweep"))
    budgets = len(set(nominal_budgets(finals["tokens"].to_numpy())))
    console.print(f"{finals['run'].nunique()} runs: {finals['params'].nunique()} sizes × {budgets} "
                  f"budgets × {finals['lr'].nunique()} learning rates × {finals['batch_size'].nunique()} batch sizes")
    hp = fit_hparams(finals, curves, HparamsConfig(n_boot=bootstrap), source=SWEEP, noise=noise).to_dict()
    print_hparams_fit(console, hp)
    save_hparams(hp, out / "hp.json")
    N, D = NEXT_RUNG * finals["params"].max(), NEXT_RUNG * finals["tokens"].max()
    p = plan_hparams(hp, N, D)
    print_hparams_plan(console, p)
    console.print(f"wrote {out / 'hp.json'}")
    return {"hparams": hp, "plan": p}
