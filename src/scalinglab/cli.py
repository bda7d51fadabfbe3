"""The `scalinglab` command line: a thin Typer app.

Each command parses its options, builds a config, calls the library and prints. Subsystems own their
commands in their own module (``fitting/cli.py``, ``ladder/cli.py``, ``quant/cli.py``,
``kernels/cli.py``) and register them here, so this file only wires. Heavy libraries (torch, numba)
are imported inside the commands that need them, so `scalinglab --help` and `fit` start fast.

Bad input raises :class:`scalinglab.errors.InputError`; :func:`main` prints its one line and exits 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from scalinglab import __version__
from scalinglab.errors import EXIT_BAD_INPUT, InputError

app = typer.Typer(
    name="scalinglab",
    help="Measure small, predict big: ladders of small models, scaling-law fits, compute-optimal plans, "
    "and post-training quantization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: each prints ours against a baseline run side by side.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

err_console = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the scalinglab version."""
    print(__version__)


def _register_subsystems() -> None:
    # Each module adds its commands to `app` / `bench_app`. Importing them is cheap: they defer heavy imports.
    from scalinglab.fitting import cli as fitting_cli

    fitting_cli.register(app, bench_app)
    for module in ("scalinglab.fitting.hparams_cli", "scalinglab.ladder.cli", "scalinglab.quant.cli", "scalinglab.kernels.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # subsystem not built yet
            raise
        mod.register(app, bench_app)


_register_subsystems()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn InputError into one line on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="scalinglab", standalone_mode=True)
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
