"""Shared rich consoles: results to stdout, progress and errors to stderr.

Piped to a file or a CI log, rich would squeeze tables into 80 columns and cut the numbers; there
the width is 200 unless ``COLUMNS`` says otherwise.
"""

import os
import sys

from rich.console import Console


def _width(stream) -> int | None:
    if stream.isatty() or os.environ.get("COLUMNS"):
        return None  # rich measures the terminal or reads COLUMNS
    return 200


stdout_console = Console(width=_width(sys.stdout))
stderr_console = Console(stderr=True, width=_width(sys.stderr))
