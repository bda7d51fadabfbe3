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
from scalinglab.extras import MissingExtra, extra_for, is_installed, message

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


def package_version() -> str:
    """The installed distribution's version (its metadata), or the source tree's when run uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scalinglab")
    except PackageNotFoundError:
        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(package_version())
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the scalinglab version and exit."),
) -> None:
    # No docstring: the app's help stays the root help. Commands that print results take --json: one
    # JSON object (or array) on stdout instead of the tables; progress and errors go to stderr.
    pass


@app.command()
def version() -> None:
    """Print the scalinglab version (the same as `scalinglab --version`)."""
    print(package_version())


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


def command_words(argv: list[str]) -> str:
    """The subcommand that ``argv`` names, e.g. "ladder run" (as far as the command tree resolves it)."""
    cmd, words = _command(), []
    for arg in argv:
        if arg.startswith("-"):
            continue
        sub = getattr(cmd, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        cmd = sub
    return " ".join(words)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; bad input (ours or the option parser's) → one line on stderr, exit status 2.

    So does a command whose optional extra is missing: one line naming the extra to install (see
    :mod:`scalinglab.extras`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
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
    except MissingExtra as exc:
        _error_line(message(command_words(argv), exc.extra))
        sys.exit(EXIT_BAD_INPUT)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        words = command_words(argv)
        extra = extra_for(words, root) if root and not is_installed(root) else None
        if extra is None:
            raise
        _error_line(message(words, extra))
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
