"""Predict OLMo-2 7B and 13B downstream accuracy from the OLMo model ladder, through task bits per byte.

    python benchmarks/olmo_chain.py [--bootstrap 1000] [--markdown]

The protocol of Bhagia et al. (2024, "Establishing Task Scaling Laws via Compute-Efficient Model
Ladders"): fit on the 190M, 370M, 760M and 1.3B runs at 1, 2, 5 and 10× Chinchilla tokens (16 runs,
bundled in ``scalinglab/data/olmo_ladder``), then for each of the paper's 8 tasks

    step 1  task bpb  = E + A·N^-α + B·D^-β        (final checkpoint of each run)
    step 2  accuracy  = a / (1 + e^(−k(bpb − L0))) + b   (every checkpoint after the first 10 %, bpb
            as a trailing mean over 5 evaluations, plus the paper's helper point bpb = 0 → accuracy 1)

and predict the 7B (4T tokens) and 13B (5T tokens) models. Intervals: one bootstrap over the 16 runs that
refits both steps per replicate. "Actual" is the mean of each target run's last five evaluations (as the
paper reports). The one-step baseline fits Chinchilla straight from (N, D) to the error 1 − accuracy.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scalinglab.fitting.chain import fit_chain
from scalinglab.fitting.chain_demo import TARGETS, TASKS, olmo_ladder, task_config

# Bhagia et al. 2024: relative errors of their chained (N, D) → bpb → accuracy 13B predictions.
PAPER_13B_ERROR = {"MMLU": 0.007, "HellaSwag": 0.025, "PIQA": 0.011, "SocialIQA": 0.027, "CSQA": 0.047,
                   "OBQA": 0.078, "ARC-E": 0.114, "ARC-C": 0.175}


def run(bootstrap: int, seed: int = 0, law: str = "chinchilla") -> list[dict]:
    table, targets = olmo_ladder()
    rows = []
    for stem, label in TASKS.items():
        t0 = time.perf_counter()
        chain = fit_chain(table, task_config(stem, bootstrap=bootstrap, seed=seed, law=law))
        for name, tgt in targets.items():
            pred = chain.predict({"params": tgt["params"], "tokens": tgt["tokens"]})
            actual, actual_via = tgt[f"acc:{stem}"], tgt[f"task_loss:{stem}"]
            lo, hi = pred["target"].get("interval", [np.nan, np.nan])
            rows.append({
                "task": label, "model": name, "predicted": pred["target"]["value"], "lo": lo, "hi": hi,
                "actual": actual, "rel_error": pred["target"]["value"] / actual - 1, "inside": lo <= actual <= hi,
                "via_predicted": pred["via"]["value"], "via_actual": actual_via,
                "via_rel_error": pred["via"]["value"] / actual_via - 1,
                "via_lo": pred["via"].get("interval", [np.nan])[0], "via_hi": pred["via"].get("interval", [np.nan, np.nan])[1],
                "step2_at_actual_via": _link_at(chain, actual_via),
                "baseline": pred["baseline"]["value"], "baseline_rel_error": pred["baseline"]["value"] / actual - 1,
                "paper_rel_error": PAPER_13B_ERROR[label] if name == "13B-5T" else np.nan,
                "seconds": time.perf_counter() - t0,
            })
    return rows


def _link_at(chain, via: float) -> float:
    from scalinglab.laws.registry import get_law

    return float(get_law(chain.link).predict(chain.step2.params, {"x": np.array([via])})[0])


def table_text(rows: list[dict], model: str, markdown: bool) -> str:
    sep = " | " if markdown else "  "
    head = ["task", "predicted", "95% interval", "actual", "rel. error", "inside", "paper (13B)",
            "bpb predicted [95%] / actual", "step 2 at actual bpb", "one-step"]
    lines = [sep.join(head)]
    if markdown:
        lines = ["| " + lines[0] + " |", "|" + "---|" * len(head)]
    sel = [r for r in rows if r["model"] == model]
    for r in sel:
        cells = [r["task"], f"{r['predicted']:.3f}", f"[{r['lo']:.3f}, {r['hi']:.3f}]", f"{r['actual']:.3f}",
                 f"{abs(r['rel_error']):.1%}", "yes" if r["inside"] else "NO",
                 f"{r['paper_rel_error']:.1%}" if np.isfinite(r["paper_rel_error"]) else "—",
                 f"{r['via_predicted']:.3f} [{r['via_lo']:.3f}, {r['via_hi']:.3f}] / {r['via_actual']:.3f} ({r['via_rel_error']:+.1%})",
                 f"{r['step2_at_actual_via']:.3f}", f"{r['baseline']:.3f} ({abs(r['baseline_rel_error']):.1%})"]
        lines.append(("| " + " | ".join(cells) + " |") if markdown else sep.join(cells))
    mean = np.mean([abs(r["rel_error"]) for r in sel])
    inside = sum(r["inside"] for r in sel)
    base = np.mean([abs(r["baseline_rel_error"]) for r in sel])
    summary = f"{model}: mean |relative error| {mean:.2%} over {len(sel)} tasks; {inside}/{len(sel)} actuals inside the 95% interval; one-step baseline {base:.2%}"
    if model == "13B-5T":
        summary += f"; paper's chained mean {np.mean(list(PAPER_13B_ERROR.values())):.2%}"
    return "\n".join(lines) + "\n\n" + summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--law", default="chinchilla", help="step 1 law: chinchilla (the paper's) or overtraining")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(args.bootstrap, args.seed, args.law)
    for model in TARGETS:
        print(table_text(rows, model, args.markdown))
        print()
    print(f"step 1 law {args.law}; {args.bootstrap} bootstrap replicates per task; {time.perf_counter() - t0:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
