"""CLI commands of the ladder: ``ladder run``, ``ladder status``, ``ladder demo`` and ``bench train``.

Only parsing and printing live here; torch and the trainer are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the ``ladder`` sub-app to the root app and ``train`` to ``bench``."""
    ladder = typer.Typer(help="Train ladders of small GPTs and record them in a run store.", no_args_is_help=True)
    app.add_typer(ladder, name="ladder")

    @ladder.command("run")
    def run(
        spec: Path = typer.Argument(..., help="Ladder spec (.yaml, .toml or .json)."),
        store: Path = typer.Option(Path("runs.db"), "--store", help="SQLite run store (created if absent)."),
        executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
        address: str = typer.Option(None, "--address", help="Ray cluster address (e.g. auto, ray://host:10001)."),
        workers: int = typer.Option(None, "--workers", help="Local worker processes (default: one per core)."),
        threads: int = typer.Option(None, "--threads", help="Torch threads per worker (default: cores / workers)."),
        root: Path = typer.Option(None, "--root", help="Checkpoint directory (default: <store>-runs/)."),
    ) -> None:
        """Run every job of SPEC; finished jobs are skipped, interrupted ones resume from their checkpoint.

        With a `quantize:` list in SPEC, each finished run is quantized with every config and evaluated on
        its held-out tokens; rows already stored are skipped, missing ones (a killed run) are computed.

        Examples:

            scalinglab ladder run ladder.yaml --store runs.db

            scalinglab ladder run ladder.yaml --store /shared/runs.db --executor ray --address auto

            scalinglab fit runs.db --law chinchilla

            scalinglab ladder run examples/ptq_ladder.yaml --store ptq.db   # with quantize: configs
        """
        from scalinglab.errors import InputError
        from scalinglab.ladder.executors import printer, run_ladder
        from scalinglab.ladder.spec import load_spec

        for option, value in (("--workers", workers), ("--threads", threads)):
            if value is not None and value < 1:
                raise InputError(f"{option}: {value} must be >= 1 (or left out for the default)")
        if executor not in ("local", "ray"):
            raise InputError(f"--executor: {executor!r}, expected local or ray")
        ladder_spec = load_spec(spec)
        print(f"ladder {ladder_spec.name}: {len(ladder_spec.jobs)} jobs → {store}")
        summary = run_ladder(ladder_spec, store, root=root, executor=executor, workers=workers, threads=threads,
                             address=address, on_result=printer(len(ladder_spec.jobs)))
        elsewhere = f", {len(summary.elsewhere)} by another runner" if summary.elsewhere else ""
        quant = (f", {summary.quant_evals} quant evals ({len(summary.quantized)} runs only quantized)"
                 if ladder_spec.quantize else "")
        print(f"done {len(summary.done)}, skipped {len(summary.skipped)} (already done){elsewhere}{quant}, "
              f"failed {len(summary.failed)} in {summary.seconds:.0f}s")
        for run_id, error in summary.failed.items():
            print(f"  failed {run_id}: {error}")
        if summary.failed:
            raise typer.Exit(1)

    @ladder.command("status")
    def status(store: Path = typer.Option(Path("runs.db"), "--store", help="SQLite run store.")) -> None:
        """One line per run: status, N, D, last evaluation and loss; then counts by status and of quant evals.

        Example:

            scalinglab ladder status --store runs.db
        """
        from scalinglab.ladder.status import status_lines

        for line in status_lines(store):
            print(line)

    @ladder.command("demo")
    def demo(
        store: Path = typer.Option(Path("ladder-demo.db"), "--store", help="SQLite run store."),
        scale: str = typer.Option("demo", "--scale", help="demo (~2 min) or full (< 15 min on 2 cores)."),
        corpus: str = typer.Option("synthetic", "--corpus", help="synthetic or shakespeare."),
    ) -> None:
        """Train the built-in ladder (5 sizes × 3 token budgets).

        Example:

            scalinglab ladder demo --scale full --store full.db && scalinglab fit full.db --law chinchilla
        """
        from scalinglab.ladder.demo import run_demo_ladder

        run_demo_ladder(store, scale=scale, corpus=corpus)
        print(f"wrote {store}")

    @bench_app.command("train")
    def bench_train(
        seconds: float = typer.Option(10.0, "--seconds", help="Timed seconds per configuration."),
        quick: bool = typer.Option(False, "--quick", help="2 s per configuration, 2 repeats (a couple of minutes)."),
    ) -> None:
        """Training tokens/s: our trainer vs a minimal PyTorch GPT loop, fp32, bf16 and auto, and % of matmul peak.

        Example:

            scalinglab bench train --seconds 10
        """
        from scalinglab.ladder.bench import main as bench_main

        bench_main(seconds=2.0, repeats=2) if quick else bench_main(seconds=seconds)
