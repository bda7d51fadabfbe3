"""The bundled OLMo ladder as a chain problem: load it, fit one task, forecast the 13B model.

Used by `scalinglab demo` and ``benchmarks/olmo_chain.py``. Data: Bhagia et al. (2024), OLMo-2 model
ladder (Apache-2.0), every in-loop evaluation of the 190M–3.2B ladder runs and of the 7B and 13B models.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from scalinglab import data as bundled
from scalinglab.fitting.chain import ChainConfig, fit_chain
from scalinglab.runs.schema import canonicalize, coerce_numeric, derive, parse_column_map

PER_STEP = "olmo_ladder/olmo_ladder_per_step.csv"
# The paper's 8 tasks (5-shot, ranked classification): column stem in the bundled CSV → display name.
TASKS = {
    "mmlu_avg_test": "MMLU", "hellaswag_val": "HellaSwag", "piqa_val": "PIQA", "socialiqa_val": "SocialIQA",
    "csqa_val": "CSQA", "openbookqa_test": "OBQA", "arc_easy_test": "ARC-E", "arc_challenge_test": "ARC-C",
}
LADDER = r"(190M|370M|760M|1B)-(1|2|5|10)xC"  # the paper's fitting runs: 4 sizes × 1, 2, 5, 10× Chinchilla
TARGETS = {"7B-4T": "peteish7_eval_full", "13B-5T": "peteish13_eval_final"}
LAST_EVALS = 5  # a target's actual value: the mean of its last five evaluations (as the paper reports)
SMOOTH = 5  # step 2 reads bpb as a trailing mean over five evaluations (the paper's moving average)
ANCHOR = (0.0, 1.0)  # the paper's helper point for step 2: zero task loss, full accuracy


def olmo_ladder() -> tuple[pd.DataFrame, dict[str, dict]]:
    """(the 16 ladder runs, every evaluation, canonical names; {target: N, D, last-five means of each metric})."""
    raw = pd.read_csv(bundled.path(PER_STEP))
    cols = ["params=N_nonembed", "flops=compute_flops"]
    cols += [f"task_loss:{t}={t}_5shot__bpb,acc:{t}={t}_5shot__acc" for t in TASKS]
    ladder = raw[raw.run.str.fullmatch(LADDER)]
    table = derive(coerce_numeric(canonicalize(ladder, parse_column_map(",".join(cols)), PER_STEP), PER_STEP), PER_STEP)
    targets = {}
    for name, run in TARGETS.items():
        rows = raw[raw.run == run].sort_values("tokens").tail(LAST_EVALS)
        last = rows.iloc[-1]
        targets[name] = {"params": float(last.N_nonembed), "tokens": float(last.tokens),
                         **{f"acc:{t}": float(rows[f"{t}_5shot__acc"].mean()) for t in TASKS},
                         **{f"task_loss:{t}": float(rows[f"{t}_5shot__bpb"].mean()) for t in TASKS}}
    return table, targets


def task_config(stem: str, bootstrap: int = 0, seed: int = 0, **kwargs) -> ChainConfig:
    return ChainConfig(target=f"acc:{stem}", via=f"task_loss:{stem}", bootstrap=bootstrap, smooth=SMOOTH,
                       anchor=ANCHOR, seed=seed, **kwargs)


def run_chain_demo(out: Path, console: Console, task: str = "hellaswag_val", bootstrap: int = 100) -> dict:
    """Fit the HellaSwag chain on the ladder, forecast OLMo-2 13B (5T tokens), compare with its real score."""
    t0 = time.perf_counter()
    table, targets = olmo_ladder()
    result = fit_chain(table, task_config(task, bootstrap=bootstrap))
    result.save(out / "chain.json")
    tgt = targets["13B-5T"]
    pred = result.predict({"params": tgt["params"], "tokens": tgt["tokens"]})
    via, acc = pred["via"], pred["target"]
    actual = tgt[f"acc:{task}"]
    console.print(f"{TASKS[task]} bpb at N={tgt['params']:.3g}, D={tgt['tokens']:.3g}: {via['value']:.3f} "
                  f"[{via['interval'][0]:.3f}, {via['interval'][1]:.3f}] (actual {tgt[f'task_loss:{task}']:.3f})")
    console.print(f"{TASKS[task]} accuracy: predicted {acc['value']:.3f} [{acc['interval'][0]:.3f}, {acc['interval'][1]:.3f}], "
                  f"actual {actual:.3f} ({acc['value'] / actual - 1:+.1%}); one-step baseline "
                  f"{pred['baseline']['value']:.3f} ({pred['baseline']['value'] / actual - 1:+.1%})")
    console.print(f"wrote {out / 'chain.json'} ({time.perf_counter() - t0:.1f} s; "
                  f"`scalinglab predict {out / 'chain.json'} --params 1.3e10 --tokens 5e12`)")
    return {"chain": result, "prediction": pred, "actual": actual,
            "relative_error": float(acc["value"] / actual - 1), "inside": bool(acc["interval"][0] <= actual <= acc["interval"][1])}


__all__ = ["olmo_ladder", "run_chain_demo", "task_config", "TASKS", "TARGETS"]
