"""The `scalinglab` command line: a thin Typer app.

Each command parses its options, builds a config, calls the library and prints. Subsystems own their
commands in their own module (``fitting/cli.py``, ``ladder/cli.py``, ``quant/cli.py``,
``kernels/cli.py``) and register them here, so this file only wires. Heavy libraries (torch, numba)
are imported inside the commands that need them, so `scalinglab --help` and `fit` start fast.

Bad input raises :class:`scalinglab.errors.InputError`; :func:`main` prints its one line and exits 2, and
does the same for the option parser's usage errors (a missing argument, ``--params abc``).
"""

from __future__ import annotations

import functools
import importlib
import sys

import typer
import typer.main
from rich.console import Console
from rich.markup import escape

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
    for module in ("scalinglab.ladder.cli", "scalinglab.quant.cli", "scalinglab.kernels.cli", "scalinglab.data.cli",
                   "scalinglab.hw.cli", "scalinglab.report.cli",
                   "scalinglab.fitting.chain_cli", "scalinglab.ladder.tasks_cli", "scalinglab.fitting.hparams_cli"):
        importlib.import_module(module).register(app, bench_app)


_register_subsystems()


@functools.cache
def _command():
    """The click command tree, built once per process (building it inspects every command's signature)."""
    return typer.main.get_command(app)


def _error_line(message: str) -> None:
    # escape(): a message quotes user text (a column name, a path), which rich must not read as markup.
    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; bad input (ours or the option parser's) → one line on stderr, exit status 2."""
    try:  # typer >= 0.20 vendors click (Abort lives in typer.exceptions); older typer uses click itself
        from typer._click import exceptions as click
        from typer.exceptions import Abort
    except ImportError:
        from click import exceptions as click
        from click.exceptions import Abort

    try:
        code = _command().main(args=argv, prog_name="scalinglab", standalone_mode=False)
    except InputError as exc:
        _error_line(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    except click.NoArgsIsHelpError as exc:
        exc.show()  # a bare group name: its help, as before
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "scalinglab"
        _error_line(f"{where}: {exc.format_message()} (see {where} --help)")
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        _error_line(exc.format_message())
        sys.exit(exc.exit_code)
    except Abort:
        _error_line("aborted")
        sys.exit(1)
    # Without standalone mode click returns the command's value, or the code of a typer.Exit.
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


if __name__ == "__main__":
    main()
