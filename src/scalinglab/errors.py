"""One exception type for bad user input.

Everything a user can get wrong (a file, a column, a value, a flag) raises :class:`InputError` with a
single line that names the file, row and field and says what was expected. The CLI prints that line
and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad input from the user: the message is one line, fit to print as-is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
