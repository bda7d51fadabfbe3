"""`scalinglab demo`: the whole measure-small → predict-big pipeline on embedded defaults.

No input, no server. Part A reads the Gemstones final losses (McLeish et al. 2025, MIT) shipped in
``scalinglab/data``, checks extrapolation on held-out large runs, fits Chinchilla with bootstrap
intervals, forecasts a Chinchilla-sized run, plans a 1e24-FLOP budget, and writes JSON and a plot; then
fits the learning-rate and batch-size laws of a bundled Shakespeare/Milton sweep and says how to train
the next rung of that ladder (η*, B*, B_crit, steps against batch size).
Part B trains a small ladder (5 sizes × 3 token budgets) on a synthetic language whose entropy rate
is known exactly, stores it in SQLite, fits the same law to it and compares the fitted E with the
true irreducible loss.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from scalinglab import data as bundled
from scalinglab.fitting.api import fit
from scalinglab.fitting.validate import parse_holdout, split
from scalinglab.planning.compute_optimal import plan
from scalinglab.planning.predict import predict
from scalinglab.report.plots import plot_fit
from scalinglab.report.tables import print_fit, print_plan, print_prediction
from scalinglab.runs.io import read_runs

HOLDOUT = "largest-compute=10"
FORECAST = {"params": 7.0e10, "tokens": 1.4e12}  # Chinchilla itself (Hoffmann et al. 2022)
BUDGET = 1e24


def run_demo(out: Path, bootstrap: int = 1000, console: Console | None = None, ladder: bool = True) -> dict:
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    source = bundled.path(bundled.GEMSTONES)
    table = read_runs(source)
    console.print(Rule("scalinglab demo: Gemstones runs (bundled, MIT)"))
    console.print(f"{len(table)} runs, N {table.params.min():.3g}–{table.params.max():.3g}, "
                  f"D {table.tokens.min():.3g}–{table.tokens.max():.3g} tokens")

    console.print(Rule(f"1. extrapolation check: fit without the 10 largest-compute runs ({HOLDOUT})"))
    check = fit(table, "chinchilla", holdout=HOLDOUT)
    print_fit(console, check)

    console.print(Rule(f"2. fit on all runs with {bootstrap} bootstrap refits"))
    result = fit(table, "chinchilla", bootstrap=bootstrap, progress=True)
    print_fit(console, result)
    result.save(out / "fit.json")

    console.print(Rule("3. forecast and compute-optimal plan"))
    pred = predict(result, FORECAST)
    print_prediction(console, pred)
    p = plan(result, BUDGET)
    print_plan(console, p)

    fit_part, held = split(table, parse_holdout(HOLDOUT), str(source))
    plot_fit(check, fit_part, out / "holdout.png", held)
    plot_fit(result, table, out / "fit.png")
    console.print(f"wrote {out / 'fit.json'}, {out / 'fit.png'}, {out / 'holdout.png'}")
    summary = {"fit": result, "holdout": check, "prediction": pred, "plan": p}
    from scalinglab.fitting.hparams_demo import run_hparams_part

    summary["hparams"] = run_hparams_part(out, console, bootstrap=min(bootstrap, 200))
    if ladder:
        summary["ladder"] = run_ladder_part(out, bootstrap, console)
    return summary


def run_ladder_part(out: Path, bootstrap: int, console: Console) -> dict:
    """Train the demo ladder (resumable: finished runs are skipped) and fit it against the known floor."""
    from scalinglab.ladder.demo import run_demo_ladder
    from scalinglab.runs.store import load_run_table

    console.print(Rule("4. measure small: a 5 × 3 ladder on a synthetic language with a known floor"))
    store = run_demo_ladder(out / "ladder.db", progress=True, scale="demo")
    finals = load_run_table(store, final_only=True)
    floor = float(finals["floor"].iloc[0])
    result = fit(store, "chinchilla", bootstrap=min(bootstrap, 200), holdout="largest-compute=1")
    print_fit(console, result)
    err = result.params["E"] / floor - 1
    lo, hi = result.bootstrap.ci["E"]
    console.print(f"true irreducible loss (entropy rate) {floor:.4f} nats; fitted E {result.params['E']:.4f} "
                  f"({err:+.1%}; {result.bootstrap.level:.0%} CI [{lo:.4f}, {hi:.4f}])")
    result.save(out / "ladder_fit.json")
    return {"fit": result, "floor": floor, "relative_error_E": err}
