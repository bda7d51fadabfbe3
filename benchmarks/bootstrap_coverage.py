"""Bootstrap interval coverage: simulate data sets from known Chinchilla constants, fit, count hits.

For each Huber δ asked for, fits ``--sets`` simulated 12 × 20 run grids (1 % log-normal noise by default)
with ``--boot`` bootstrap replicates and prints how often the 95 % percentile interval contains the
true E, α, β and the loss extrapolated to 7e10 parameters / 1.4e12 tokens, with the Monte-Carlo
standard error and the median interval width. The table in docs/fitting.md comes from:

    python benchmarks/bootstrap_coverage.py --sets 400 --boot 400 --delta auto --delta 1e-3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scalinglab.console import stderr_console, stdout_console
from scalinglab.fitting.coverage import QUANTITIES, CoverageConfig, simulate_coverage, truth
from scalinglab.fitting.objective import parse_delta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=int, default=200, help="simulated data sets per δ")
    ap.add_argument("--boot", type=int, default=400, help="bootstrap replicates per fit")
    ap.add_argument("--noise", type=float, default=0.01, help="σ of the log-normal noise on the loss")
    ap.add_argument("--delta", action="append", default=None, help="Huber δ: 'auto' or a number (repeatable)")
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    deltas = [parse_delta(d) for d in (args.delta or ["auto", "1e-3"])]
    true = truth()
    table = Table(title=f"coverage of {args.level:.0%} bootstrap percentile intervals: {args.sets} data sets, "
                  f"12 × 20 runs, noise σ(log L) = {args.noise:g}, {args.boot} replicates", title_justify="left")
    for col in ("Huber δ", *QUANTITIES, "MC s.e.", "seconds"):
        table.add_column(col, justify="right")
    widths = Table(title=f"median interval width (truth: {', '.join(f'{q} {v:.4g}' for q, v in true.items())})",
                   title_justify="left")
    for col in ("Huber δ", *QUANTITIES):
        widths.add_column(col, justify="right")
    for delta in deltas:
        cfg = CoverageConfig(n_sets=args.sets, noise=args.noise, huber_delta=delta, n_boot=args.boot,
                             levels=(args.level,), seed=args.seed)
        with Progress(TextColumn(f"δ = {delta}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=stderr_console, transient=True) as bar:
            task = bar.add_task("sets", total=args.sets)
            t0 = time.perf_counter()
            res = simulate_coverage(cfg, progress=lambda i, task=task: bar.update(task, completed=i))
            seconds = time.perf_counter() - t0
        label = f"auto (median {np.median(res.deltas):.4f})" if delta == "auto" else f"{delta:g}"
        table.add_row(label, *(f"{res.coverage(args.level, q):.1%}" for q in QUANTITIES),
                      f"{res.standard_error(args.level):.1%}", f"{seconds:.0f}")
        widths.add_row(label, *(f"{np.median(res.widths[args.level][q]):.4g}" for q in QUANTITIES))
        if res.failed_refits:
            stdout_console.print(f"δ = {delta}: {res.failed_refits} bootstrap refits failed (left out)")
    stdout_console.print(table)
    stdout_console.print(widths)


if __name__ == "__main__":
    main()
