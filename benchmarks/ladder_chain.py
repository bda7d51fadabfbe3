"""Our own downstream chain: predict a held-out ladder run's task accuracy from smaller runs' task scores.

    scalinglab ladder run examples/chain_synthetic.yaml --store syn.db --workers 1 --threads 1
    scalinglab ladder run examples/chain_synthetic_target.yaml --store syn.db --workers 1 --threads 1
    scalinglab ladder run examples/chain_shakespeare.yaml --store shk.db --workers 1 --threads 1
    scalinglab ladder run examples/chain_shakespeare_target.yaml --store shk.db --workers 1 --threads 1
    python benchmarks/ladder_chain.py --synthetic syn.db --shakespeare shk.db [--bootstrap 200] [--plot docs/chain_ladder.png]

Every ladder run scored its task at each evaluation (ladder/task_suite.py), so the store holds
``task_loss:<task>`` (bits per byte of the correct choice) and ``acc:<task>`` per checkpoint. The chain
(``scalinglab chain``, Bhagia et al. 2024) is fitted with ``--holdout largest-compute=1``: without the
largest run, step 1 (Chinchilla, (N, D) → task loss) on the other runs' final evaluations and step 2
(sigmoid, task loss → accuracy) on their checkpoints, one bootstrap over runs for both; then it predicts
the held-out run. Printed: predicted, 95 % interval and actual accuracy for the chain and the one-step
baseline (Chinchilla straight from (N, D) to 1 − accuracy). On the synthetic language the Bayes-optimal
accuracy of the task is exact (the ceiling a perfect model reaches), printed beside.
"""

from __future__ import annotations

import argparse

import numpy as np

from scalinglab.fitting.chain import chain, final_rows
from scalinglab.laws.registry import get_law
from scalinglab.runs.io import read_runs

TASK = {"synthetic": "next_token", "shakespeare": "cloze"}
CHOICES = 4  # both example ladders ask 4-way questions


def bayes_ceiling(table) -> tuple[float, float, int]:
    """(expected Bayes accuracy, Bayes accuracy on the task's own items, items) of the next_token task."""
    from scalinglab.ladder.builtin_tasks import bayes_accuracy, synthetic_items
    from scalinglab.ladder.spec import Job
    from scalinglab.ladder.synthetic import MarkovSource
    from scalinglab.ladder.task_suite import NEXT_TOKEN_CONTEXT, TASK_SEED
    from scalinglab.runs.store import RunStore

    with RunStore(table.attrs["source"], readonly=True) as store:
        job = Job.from_dict(store.get(table["run"].iloc[0])["config"])
    task = next(t for t in job.tasks if t.name == "next_token")
    src = MarkovSource(job.corpus.markov)
    _, on_items = synthetic_items(src, task.items, NEXT_TOKEN_CONTEXT, task.choices,
                                  np.random.default_rng([TASK_SEED, task.items, task.choices]))
    return bayes_accuracy(src, task.choices), on_items, task.items


def run(store: str, kind: str, bootstrap: int) -> dict:
    task = TASK[kind]
    table = read_runs(store, all_evals=True)
    table.attrs["source"] = store
    result = chain(table, target=f"acc:{task}", via=f"task_loss:{task}", holdout="largest-compute=1",
                   bootstrap=bootstrap)
    held = result.holdout["runs"][0]
    out = {"kind": kind, "task": task, "result": result, "held": held, "table": table,
           "fit_runs": result.runs}
    if kind == "synthetic":
        out["ceiling"] = bayes_ceiling(table)
    return out


def report(r: dict) -> str:
    h, tgt, base = r["held"], r["held"]["target"], r["held"]["baseline"]
    finals = r["table"].iloc[final_rows(r["table"])]
    others = finals[finals["run"] != h["run"]]
    lines = [f"{r['kind']} ladder, task {r['task']}: fitted on {r['fit_runs']} runs "
             f"(N {others['params'].min():.3g}–{others['params'].max():.3g}, D {others['tokens'].min():.3g}–"
             f"{others['tokens'].max():.3g}); held out {h['run']} (N {h['params']:.3g}, D {h['tokens']:.3g})"]
    lines.append("| | predicted | 95% interval | actual | rel. error | inside |")
    lines.append("|---|---|---|---|---|---|")
    v = h["via"]
    lines.append(f"| task loss (bpb), step 1 | {v['value']:.4f} | [{v['interval'][0]:.4f}, {v['interval'][1]:.4f}] | "
                 f"{h['actual_via']:.4f} | {v['value'] / h['actual_via'] - 1:+.1%} | "
                 f"{'yes' if v['interval'][0] <= h['actual_via'] <= v['interval'][1] else 'NO'} |")
    for name, p in (("accuracy, chain (two steps)", tgt), ("accuracy, one-step baseline", base)):
        lo, hi = p["interval"]
        lines.append(f"| {name} | {p['value']:.4f} | [{lo:.4f}, {hi:.4f}] | {h['actual']:.4f} | "
                     f"{p['value'] / h['actual'] - 1:+.1%} | {'yes' if lo <= h['actual'] <= hi else 'NO'} |")
    lo, hi = tgt["link_only_interval"]
    lines.append(f"step 2 alone at the predicted task loss: 95% interval [{lo:.4f}, {hi:.4f}]; step 2 at the actual "
                 f"task loss: {float(get_law(r['result'].link).predict(r['result'].step2.params, {'x': np.array([h['actual_via']])})[0]):.4f}")
    if "ceiling" in r:
        lines.append(f"Bayes-optimal accuracy (exact ceiling): {r['ceiling'][0]:.4f} expected, {r['ceiling'][1]:.4f} on "
                     f"the task's {r['ceiling'][2]} items")
    return "\n".join(lines)


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4.2 * len(results)), squeeze=False)
    for row, r in zip(axes, results, strict=True):
        res, h, table = r["result"], r["held"], r["table"]
        via, target = res.via, res.target
        held = table["run"] == h["run"]
        fit = table[~held]
        norm = matplotlib.colors.LogNorm(table["params"].min(), table["params"].max())
        ax = row[0]
        sc = ax.scatter(fit[via], fit[target], c=fit["params"], norm=norm, cmap="viridis", s=14, label="ladder checkpoints")
        ax.scatter(table[held][via], table[held][target], marker="x", color="crimson", s=22, label="held-out run (not fitted)")
        xs = np.linspace(table[via].min() * 0.95, table[via].max() * 1.02, 200)
        ax.plot(xs, get_law(res.link).predict(res.step2.params, {"x": xs}), color="k", lw=1.2, label="step 2: sigmoid link")
        t, v = h["target"], h["via"]
        ax.errorbar([v["value"]], [t["value"]], yerr=[[t["value"] - t["interval"][0]], [t["interval"][1] - t["value"]]],
                    xerr=[[v["value"] - v["interval"][0]], [v["interval"][1] - v["value"]]], fmt="o", color="crimson",
                    mfc="white", capsize=3, label="chain prediction (95%)")
        if "ceiling" in r:
            ax.axhline(r["ceiling"][0], ls="--", color="grey", lw=1, label="Bayes ceiling (exact)")
        else:
            ax.axhline(1 / CHOICES, ls=":", color="grey", lw=1, label=f"chance (1/{CHOICES})")
        ax.set_xlabel(f"{via} (bits per byte of the correct choice)")
        ax.set_ylabel(target)
        ax.set_title(f"{r['kind']}: accuracy vs task loss")
        ax.legend(fontsize=7)
        fig.colorbar(sc, ax=ax, label="N (non-embedding)")

        ax = row[1]
        finals = table.iloc[final_rows(table)]
        fin_fit = finals[finals["run"] != h["run"]]
        ax.scatter(fin_fit["flops"], fin_fit[via], c=fin_fit["params"], norm=norm, cmap="viridis", s=30, label="final evaluations (fitted)")
        law = get_law(res.law)
        theta = np.asarray(res.step1.theta, float)[None]
        for n in sorted(finals["params"].unique()):
            d = np.geomspace(finals["tokens"].min(), finals["tokens"].max() * 1.5, 60)
            x = law.prepare({"params": np.full_like(d, n), "tokens": d})
            c = d * (finals.loc[finals["params"] == n, "flops"] / finals.loc[finals["params"] == n, "tokens"]).iloc[0]
            ax.plot(c, np.exp(law.log_predict(theta, x))[0], color=matplotlib.cm.viridis(norm(n)), lw=0.8)
        hf = finals[finals["run"] == h["run"]].iloc[0]
        ax.errorbar([hf["flops"]], [v["value"]], yerr=[[v["value"] - v["interval"][0]], [v["interval"][1] - v["value"]]],
                    fmt="o", color="crimson", mfc="white", capsize=3, label="step 1 prediction (95%)")
        ax.scatter([hf["flops"]], [h["actual_via"]], marker="x", color="crimson", s=40, zorder=5, label="held-out actual")
        ax.set_xscale("log")
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel(via)
        ax.set_title(f"{r['kind']}: task loss vs compute (lines: step 1 per N)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic")
    ap.add_argument("--shakespeare")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--plot")
    args = ap.parse_args()
    results = [run(s, k, args.bootstrap) for k, s in (("synthetic", args.synthetic), ("shakespeare", args.shakespeare)) if s]
    for r in results:
        print(report(r), end="\n\n")
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
