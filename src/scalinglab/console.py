"""Shared rich consoles: results to stdout, progress and errors to stderr."""

from rich.console import Console

stdout_console = Console()
stderr_console = Console(stderr=True)
