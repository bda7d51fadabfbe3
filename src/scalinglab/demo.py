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

import threading
import time
from contextlib import contextmanager
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
CPU = "2 cores of an AMD EPYC (Zen 4), quiet machine"
HEARTBEAT_S = 5.0  # a stage without its own progress bar prints its elapsed time this often
# Expected seconds per stage on CPU (the first run also compiles the numba kernels, ~30 s, cached after).
EXPECTED_S = {"holdout": 3, "bootstrap": 3, "forecast": 8, "ladder": 80, "ladder_fit": 5}


@contextmanager
def stage(console: Console, title: str, expected_s: float, own_bar: bool = False):
    """A titled stage: prints its expected time at once, then shows the elapsed time until it ends.

    On a terminal a spinner line counts the seconds; otherwise a line is printed every HEARTBEAT_S.
    ``own_bar``: the stage draws its own progress bar, so only the title is printed.
    """
    console.print(Rule(f"{title}  (expected ~{expected_s:.0f} s)"))
    t0 = time.perf_counter()
    done = threading.Event()
    status = None if own_bar or not console.is_terminal else console.status(f"{title}: 0 s")

    def beat():
        interval = 1.0 if status is not None else HEARTBEAT_S
        while not done.wait(interval):
            elapsed = f"{time.perf_counter() - t0:.0f} s (expected ~{expected_s:.0f} s)"
            if status is not None:
                status.update(f"{title.split(':')[0]}: {elapsed}")
            else:
                console.print(f"[dim]  … {elapsed}[/]", highlight=False)

    thread = threading.Thread(target=beat, daemon=True) if not own_bar else None
    if status is not None:
        status.start()
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()
        if status is not None:
            status.stop()
        console.print(f"[dim]  done in {time.perf_counter() - t0:.1f} s[/]", highlight=False)


def run_demo(out: Path, bootstrap: int = 1000, console: Console | None = None, ladder: bool = True) -> dict:
    console = console or Console()
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    source = bundled.path(bundled.GEMSTONES)
    table = read_runs(source)
    total = sum(EXPECTED_S.values()) if ladder else EXPECTED_S["holdout"] + EXPECTED_S["bootstrap"] + EXPECTED_S["forecast"]
    console.print(Rule("scalinglab demo: Gemstones runs (bundled, MIT)"))
    when = f"~{total} s" if total < 90 else f"~{total / 60:.1f} min"
    console.print(f"expected time: {when} on {CPU}; the first run adds ~30 s compiling kernels, a loaded "
                  "machine more")
    console.print(f"{len(table)} runs, N {table.params.min():.3g}–{table.params.max():.3g}, "
                  f"D {table.tokens.min():.3g}–{table.tokens.max():.3g} tokens")

    with stage(console, f"1. extrapolation check: fit without the 10 largest-compute runs ({HOLDOUT})",
               EXPECTED_S["holdout"]):
        check = fit(table, "chinchilla", holdout=HOLDOUT)
    print_fit(console, check)

    with stage(console, f"2. fit on all runs with {bootstrap} bootstrap refits", EXPECTED_S["bootstrap"], own_bar=True):
        result = fit(table, "chinchilla", bootstrap=bootstrap, progress=True)
    print_fit(console, result)
    result.save(out / "fit.json")

    with stage(console, "3. forecast, compute-optimal plan, plots", EXPECTED_S["forecast"]):
        pred = predict(result, FORECAST)
        p = plan(result, BUDGET)
        fit_part, held = split(table, parse_holdout(HOLDOUT), str(source))
        plot_fit(check, fit_part, out / "holdout.png", held)
        plot_fit(result, table, out / "fit.png")
    print_prediction(console, pred)
    print_plan(console, p)
    console.print(f"wrote {out / 'fit.json'}, {out / 'fit.png'}, {out / 'holdout.png'}")
    check.save(out / "holdout_fit.json")
    summary = {"fit": result, "holdout": check, "prediction": pred, "plan": p}
    from scalinglab.fitting.chain_demo import run_chain_demo

    console.print(Rule("3b. downstream accuracy: OLMo ladder (bundled, Apache-2.0) → 13B HellaSwag via task loss"))
    summary["chain"] = run_chain_demo(out, console, bootstrap=min(bootstrap, 100))
    from scalinglab.fitting.hparams_demo import run_hparams_part

    summary["hparams"] = run_hparams_part(out, console, bootstrap=min(bootstrap, 200))
    if ladder:
        summary["ladder"] = run_ladder_part(out, bootstrap, console)
    summary["report"] = write_demo_report(out, source, ladder, console)
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return summary


def write_demo_report(out: Path, source: Path, ladder: bool, console: Console) -> Path:
    """The HTML report of what the demo just measured: the ladder store if it ran, else the Gemstones fits."""
    from scalinglab.report.html import ReportConfig, write_report

    if ladder:
        cfg = ReportConfig(data=out / "ladder.db", fits=(out / "ladder_fit.json",), title="scalinglab demo: ladder")
    else:
        cfg = ReportConfig(data=source, fits=(out / "fit.json", out / "holdout_fit.json"), plan_flops=(BUDGET,),
                           title="scalinglab demo: Gemstones")
    path = write_report(cfg, out / "report.html")
    console.print(f"report: {path}")
    return path


def run_ladder_part(out: Path, bootstrap: int, console: Console) -> dict:
    """Train the demo ladder (resumable: finished runs are skipped) and fit it against the known floor."""
    from scalinglab.ladder.demo import run_demo_ladder
    from scalinglab.runs.store import load_run_table

    with stage(console, "4. measure small: train a 5 × 3 ladder on a synthetic language with a known floor",
               EXPECTED_S["ladder"]):
        store = run_demo_ladder(out / "ladder.db", progress=True, scale="demo")
    finals = load_run_table(store, final_only=True)
    floor = float(finals["floor"].iloc[0])
    with stage(console, "5. fit the ladder, compare E with the true floor", EXPECTED_S["ladder_fit"]):
        result = fit(store, "chinchilla", bootstrap=min(bootstrap, 200), holdout="largest-compute=1")
    print_fit(console, result)
    err = result.params["E"] / floor - 1
    lo, hi = result.bootstrap.ci["E"]
    console.print(f"true irreducible loss (entropy rate) {floor:.4f} nats; fitted E {result.params['E']:.4f} "
                  f"({err:+.1%}; {result.bootstrap.level:.0%} CI [{lo:.4f}, {hi:.4f}])")
    result.save(out / "ladder_fit.json")
    return {"fit": result, "floor": floor, "relative_error_E": err}
