"""CLI command ``scalinglab report``: parse, build the config, write the page, print its path."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:  # noqa: ARG001 - same signature as the others
    @app.command("report")
    def report(
        data: Path = typer.Argument(..., help="Run store (.db) or any run table `fit` reads (CSV, JSONL, Parquet)."),
        fit: list[Path] = typer.Option([], "--fit", help="Fit JSON from `scalinglab fit --out` (repeatable)."),
        chain: Path = typer.Option(None, "--chain", help="Chain JSON (target via a metric; see docs/report.md)."),
        plan_flops: list[float] = typer.Option([], "--plan-flops", help="Compute budget to plan for (repeatable)."),
        quant: list[Path] = typer.Option([], "--quant", help="`scalinglab evaluate --json` output (repeatable)."),
        holdout: str = typer.Option("auto", "--holdout",
                                    help="Held-out check when no fit has one: auto, largest-compute=K, or none."),
        title: str = typer.Option("scalinglab report", "--title", help="Page title."),
        out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write."),
    ) -> None:
        """One self-contained HTML page (no network: scripts, styles and figures inside) with the runs, loss
        curves, fits with residuals and bootstrap bands, the held-out check, IsoFLOP profiles, the
        compute-optimal frontier and the plan.

        Examples:

            scalinglab report runs.db --fit fit.json --plan-flops 1e23 --out report.html

            scalinglab report gemstones.jsonl --fit fit.json --chain chain.json --quant int8.json --out r.html
        """
        from scalinglab.report.html import ReportConfig, write_report

        cfg = ReportConfig(data=data, fits=tuple(fit), chain=chain, plan_flops=tuple(plan_flops), quant=tuple(quant),
                           holdout=None if holdout.lower() == "none" else holdout, title=title)
        print(write_report(cfg, out))
