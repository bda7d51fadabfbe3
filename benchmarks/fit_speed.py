"""Fit speed: our batched full-grid Chinchilla fit vs a plain scipy loop, and 1,000 bootstrap refits.

Run:  python benchmarks/fit_speed.py            (the same as `scalinglab bench fit`)
      python benchmarks/fit_speed.py --fraction 0.1   (the loop runs every 10th start, time scaled up)
"""

from __future__ import annotations

import argparse

from scalinglab.console import stdout_console
from scalinglab.fitting.benchmark import run_fit_benchmark

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the grid the reference loop runs")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    run_fit_benchmark(stdout_console, starts_fraction=args.fraction, n_boot=args.bootstrap)
