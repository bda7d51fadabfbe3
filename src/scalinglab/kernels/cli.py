"""`scalinglab bench softmax`: parse, call the benchmark, print its table.

    scalinglab bench softmax --quick
    scalinglab bench softmax --reps 9 --no-cross-entropy

numba and torch are imported inside the command, so `scalinglab --help` stays fast.
"""

from __future__ import annotations

import typer


def bench_softmax_cmd(
    quick: bool = typer.Option(False, "--quick", help="Rows up to 1e6 and three cross-entropy shapes (~30 s)."),
    reps: int = typer.Option(7, "--reps", min=1, help="Repeats per measurement; the median is printed."),
    cross_entropy: bool = typer.Option(True, "--cross-entropy/--no-cross-entropy", help="Also time cross-entropy vs torch."),
    threads: int = typer.Option(0, "--threads", min=0, help="numba and torch threads; 0 = all cores."),
) -> None:
    """Two-pass, online and three-pass softmax vs scipy, NumPy and torch, rows 1e3…1e7 (benchmarks/softmax.py).

    Prints elements/s, GB/s and % of the copy bandwidth measured in the same run, then
    cross-entropy against torch.nn.functional.cross_entropy at evaluation shapes.
    """
    from scalinglab.kernels.softmax_bench import run_all

    print(run_all(quick=quick, reps=reps, cross_entropy=cross_entropy, threads=threads or None))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("softmax")(bench_softmax_cmd)
