"""Export a hyperparameter sweep from a run store into one CSV (what `scalinglab demo` bundles).

    python examples/export_hparams_sweep.py sweep.db src/scalinglab/data/hparams_sweep/curves.csv

One row per (run, evaluation): run, params, tokens, step, lr, batch_size, seq_len, loss, b_simple
(the smoothed gradient noise scale at that evaluation, empty when the run had no accumulation).
"""

from __future__ import annotations

import sys

from scalinglab.runs.store import load_noise_scale, load_run_table


def main(store: str, out: str) -> None:
    curves = load_run_table(store, final_only=False)
    noise = load_noise_scale(store)[["run", "step", "b_simple"]]
    table = curves.merge(noise, on=["run", "step"], how="left")
    cols = ["run", "params", "tokens", "step", "lr", "batch_size", "seq_len", "loss", "b_simple"]
    table[cols].to_csv(out, index=False, float_format="%.6g")
    print(f"{len(table)} evaluations of {table['run'].nunique()} runs → {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
