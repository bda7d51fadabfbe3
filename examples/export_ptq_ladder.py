"""Export a ladder's quantized evaluations to one CSV and print the loss-increase table by D/N and bits.

    python examples/export_ptq_ladder.py ptq.db src/scalinglab/data/ptq_ladder/evals.csv

The CSV has the columns of :func:`scalinglab.runs.quant_evals.read_quant_evals` (run_id, params, tokens,
method, bits, activations, group_size, loss, loss_float, weight_bytes). The table (markdown) has one row
per run sorted by tokens per parameter D/N, and per (config, bits) the loss increase
δ = loss − loss_float in milli-nats, followed by the Spearman rank correlation of δ with D/N per column
(+1: degradation grows with D/N in every step) over all runs and, where every size has three D/N or more,
within each size (N fixed).
"""

from __future__ import annotations

import sys

import pandas as pd

from scalinglab.runs.quant_evals import read_quant_evals
from scalinglab.runs.store import load_run_table


def config_name(row) -> str:
    if row["activations"] == "none":
        return f"{row['method']}-w-only-{'g' + str(row['group_size']) if row['group_size'] else 'channel'}"
    return f"{row['method']}-A{row['activations'] if row['method'] != 'outliertune' else 'b'}"


def degradation_table(evals: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """Rows: runs by D/N; columns: (config, bits) → δ in milli-nats; plus N, D/N and the float loss."""
    e = evals.assign(config=evals.apply(config_name, axis=1), delta=1e3 * (evals["loss"] - evals["loss_float"]))
    wide = e.pivot_table(index="run_id", columns=["config", "bits"], values="delta")
    wide = wide.reindex(columns=sorted(wide.columns, key=lambda c: (c[0], -c[1])))
    base = e.groupby("run_id")[["params", "tokens", "loss_float"]].first()
    base["D/N"] = base["tokens"] / base["params"]
    floor = finals.set_index("run")["floor"]
    base["gap"] = base["loss_float"] - floor.reindex(base.index)  # distance above the entropy floor (NaN: none known)
    wide.columns = [f"{c} W{b}" for c, b in wide.columns]
    out = base[["params", "D/N", "loss_float", "gap"]].join(wide)
    return out.sort_values(["D/N", "params"])


def markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    floor = table["gap"].notna().any()  # a real-text corpus has no known floor: the column is left out
    lines = ["| N | D/N | loss | " + ("above floor | " if floor else "") + " | ".join(cols[4:]) + " |",
             "|" + "---:|" * (len(cols) - (not floor))]
    for _, r in table.iterrows():
        cells = [f"{int(r['params']):,}", f"{r['D/N']:.0f}", f"{r['loss_float']:.3f}"]
        cells += [f"{r['gap']:.3f}"] if floor else []
        cells += [f"{r[c]:+.1f}" for c in cols[4:]]
        lines.append("| " + " | ".join(cells) + " |")
    rho = [table[c].corr(table["D/N"], method="spearman") for c in cols[4:]]
    lines.append("| Spearman ρ(δ, D/N) | | |" + (" |" if floor else "") + " " + " | ".join(f"{v:+.2f}" for v in rho) + " |")
    if table.groupby("params").size().min() >= 3:  # within one size D/N alone varies: N is not a confounder
        for n, t in table.groupby("params"):
            rho = [t[c].corr(t["D/N"], method="spearman") for c in cols[4:]]
            lines.append(f"| ρ at N = {int(n):,} | | |" + (" |" if floor else "") + " "
                         + " | ".join(f"{v:+.2f}" for v in rho) + " |")
    return "\n".join(lines)


def main(store: str, out: str) -> None:
    evals = read_quant_evals(store)
    evals.to_csv(out, index=False, float_format="%.7g")
    print(f"{len(evals)} quantized evaluations of {evals['run_id'].nunique()} runs → {out}\n")
    print(markdown(degradation_table(evals, load_run_table(store))))


if __name__ == "__main__":
    main(*sys.argv[1:3])
