"""CLI command `scalinglab hparams`: fit the learning-rate and batch-size laws of a sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scalinglab.console import stdout_console as console


def hparams_cmd(
    data: Annotated[Path, typer.Argument(help="A sweep: run store (.db) or run table (CSV, JSONL, Parquet).")],
    out: Annotated[Path | None, typer.Option(help="Write the hyperparameter fit (hp.json) here, atomically.")] = None,
    columns: Annotated[str, typer.Option(help='Map canonical names to yours: lr="learning rate",batch_size=bs')] = "",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates over runs (0 = none).")] = 200,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    target_loss: Annotated[float | None, typer.Option(help="Steps-to-target loss for the batch trade-off "
                                                            "(default: per size, the loss every batch size reaches).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write a figure of the sweep and the fitted laws (.png or .svg).")] = None,
    steps_table: Annotated[Path | None, typer.Option(help="Write the steps and tokens each run took to reach the "
                                                          "target loss (CSV).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
) -> None:
    """Fit η*(N, D) = c·N^a·D^b, B*(D) = c·D^b, the steps/batch trade-off and B_crit from a sweep.

    Examples:
      scalinglab hparams runs.db --out hp.json --plot hparams.png
      scalinglab hparams runs.db --target-loss 4.9 --steps-table steps.csv
      scalinglab hparams sweep.csv --columns lr=learning_rate --bootstrap 500 --out hp.json
      scalinglab plan fit.json --flops 1e21 --hparams hp.json
    """
    from scalinglab.fitting.hparams import HparamsConfig, fit_hparams, load_sweep
    from scalinglab.fitting.hparams_file import save_hparams
    from scalinglab.report.hparams import print_hparams_fit

    config = HparamsConfig(n_boot=bootstrap, level=level, seed=seed, target_loss=target_loss)
    finals, curves, noise = load_sweep(data, columns)
    result = fit_hparams(finals, curves, config, source=str(data), noise=noise).to_dict()
    if out:
        save_hparams(result, out)
    if steps_table:
        import pandas as pd

        from scalinglab.errors import InputError

        rows = (result.get("tradeoff") or {}).get("steps_to_target")
        if rows is None:
            raise InputError(f"{data}: --steps-table needs evaluation curves at three or more batch sizes")
        steps_table.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(steps_table, index=False)
    if plot:
        from scalinglab.report.hparams_plot import plot_hparams

        plot_hparams(finals, result, plot, noise)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_hparams_fit(console, result)
    if out:
        console.print(f"hyperparameter fit written to {out}")
    if plot:
        console.print(f"plot written to {plot}")
    if steps_table:
        console.print(f"steps to target written to {steps_table}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("hparams")(hparams_cmd)
