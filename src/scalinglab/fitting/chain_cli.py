"""CLI of the loss → accuracy chain: `scalinglab chain` (fit) and `scalinglab predict CHAIN` (forecast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scalinglab.console import stdout_console as console


def chain_cmd(
    data: Annotated[Path, typer.Argument(help="Runs with every evaluation: CSV, TSV, JSONL, Parquet, or a run store.")],
    target: Annotated[str, typer.Option(help="Metric to predict, e.g. acc:hellaswag.")],
    via: Annotated[str, typer.Option(help="Intermediate loss column, e.g. task_loss:hellaswag.")] = "loss",
    law: Annotated[str, typer.Option(help="Step 1 law of (N, D): chinchilla, overtraining, ...")] = "chinchilla",
    link: Annotated[str, typer.Option(help="Step 2 link from via to target: sigmoid, exp_error, loss_to_loss.")] = "sigmoid",
    columns: Annotated[str, typer.Option(help="Map names: params=N_nonembed,acc:hellaswag=hellaswag_acc")] = "",
    bootstrap: Annotated[int, typer.Option(help="Replicates: resample runs once, refit both steps.")] = 0,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    holdout: Annotated[str, typer.Option(help="largest-compute=K holds out the K largest runs and scores them.")] = "",
    skip_fraction: Annotated[float, typer.Option(help="Fraction of each run's first checkpoints step 2 leaves out.")] = 0.1,
    smooth: Annotated[int, typer.Option(help="Step 2 reads via as a trailing mean over this many evaluations.")] = 1,
    anchor: Annotated[str, typer.Option(help="Extra step-2 point VIA,TARGET, e.g. 0,1 (zero loss, full accuracy).")] = "",
    huber_delta: Annotated[float, typer.Option(help="Huber δ on log residuals (both steps).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    jobs: Annotated[int | None, typer.Option(help="Threads for the bootstrap (default: all cores).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the chain JSON here (atomically).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Fit the two-step chain (N, D) → intermediate loss → downstream metric, with one joint bootstrap.

    Step 1 fits --law to the --via column on each run's final evaluation; step 2 fits --link from --via
    to --target on every evaluation. A one-step baseline (--law straight to --target) is fitted beside it.

    Examples:
      scalinglab chain evals.csv --target acc:hellaswag --via task_loss:hellaswag --bootstrap 1000 --out chain.json
      scalinglab chain evals.csv --target acc:hellaswag --via task_loss:hellaswag --smooth 5 --anchor 0,1
      scalinglab chain runs.csv --target err_avg --via loss --link exp_error --holdout largest-compute=2
      scalinglab predict chain.json --params 1.3e10 --tokens 5e12
    """
    from scalinglab.fitting.chain import ChainConfig, fit_chain
    from scalinglab.fitting.validate import parse_holdout
    from scalinglab.runs.io import read_runs

    config = ChainConfig(target=target, via=via, law=law, link=link, huber_delta=huber_delta, bootstrap=bootstrap,
                         level=level, holdout=parse_holdout(holdout) if holdout else None, skip_fraction=skip_fraction,
                         smooth=smooth, anchor=parse_anchor(anchor), seed=seed, jobs=jobs, progress=not as_json)
    result = fit_chain(read_runs(data, columns, all_evals=True), config)
    if out:
        result.save(out)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    print_chain(result)
    if out:
        console.print(f"chain written to {out}")


def parse_anchor(text: str) -> tuple[float, float] | None:
    """``0,1`` → (0.0, 1.0); '' → None."""
    if not text.strip():
        return None
    from scalinglab.errors import InputError

    try:
        via, target = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--anchor: '{text}' is not of the form VIA,TARGET (e.g. 0,1)") from None
    return via, target


def print_chain(result) -> None:
    from scalinglab.report.tables import fit_table

    console.print(f"step 1: {result.law} (N, D) → {result.via}   [{result.runs} runs, final evaluations]")
    console.print(fit_table(result.step1))
    untrained = f"; {result.untrained_rows} at D = 0 (before training) left out" if result.untrained_rows else ""
    console.print(f"step 2: {result.link} {result.via} → {result.target}   [{result.step2.n_points} evaluations{untrained}]")
    console.print(fit_table(result.step2))
    if result.baseline is not None:
        console.print(f"one-step baseline: {result.law} (N, D) → {result.target}")
        console.print(fit_table(result.baseline))
    if result.holdout:
        h = result.holdout
        console.print(f"held-out runs ({h['rule']}): mean |relative error| of {result.target} "
                      f"{h['mean_abs_relative_error']:.2%}")
        for r in h["runs"]:
            console.print(f"  {r['run']}: " + _line(r) + f"; actual {r['actual']:.4f}")


def _line(pred: dict) -> str:
    def part(d):
        text = f"{d['column']} {d['value']:.4f}"
        if "interval" in d:
            text += f" [{d['interval'][0]:.4f}, {d['interval'][1]:.4f}]"
        return text

    line = f"{part(pred['via'])} → {part(pred['target'])}"
    if "baseline" in pred:
        line += f" (one-step {part(pred['baseline'])})"
    return line


def predict_chain_cmd(path: Path, params: float | None, tokens: float | None, as_json: bool) -> None:
    """`scalinglab predict CHAIN`: via and target (and the one-step baseline) at (N, D)."""
    from scalinglab.fitting.chain_result import ChainResult

    result = ChainResult.load(path)
    given = {k: v for k, v in {"params": params, "tokens": tokens}.items() if v is not None}
    pred = result.predict(given)
    if as_json:
        print(json.dumps(pred, indent=2))
        return
    inputs = ", ".join(f"{k}={v:.4g}" for k, v in pred["inputs"].items())
    level = f" ({pred['level']:.0%} intervals)" if "level" in pred else ""
    console.print(f"chain prediction at {inputs}{level}: " + _line(pred))
    far = {k: v for k, v in pred.get("extrapolation", {}).items() if v > 1}
    if far:
        console.print("extrapolation: " + ", ".join(f"{k} {v:.3g}× the largest fitted" for k, v in far.items()))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("chain")(chain_cmd)
