"""Run the CLI in-process and classify the outcome: a correct result, one-line refusal, or a defect."""

from __future__ import annotations

import contextlib
import io
import traceback
from dataclasses import dataclass


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    crash: str = ""  # the traceback of an exception that escaped main(), if any

    @property
    def refused(self) -> bool:
        """Exit 2 with exactly one non-empty line on stderr."""
        return self.code == 2 and not self.crash and len(self.err.strip().splitlines()) == 1

    def describe(self) -> str:
        return f"exit {self.code}; stderr={self.err!r}; stdout={self.out[-300:]!r}; crash={self.crash[-1500:]}"


def run_cli(argv: list[str]) -> Outcome:
    """``scalinglab.cli.main(argv)`` with stdout/stderr captured; SystemExit → its code, anything else → crash."""
    from scalinglab.cli import main

    out, err = io.StringIO(), io.StringIO()
    code, crash = 0, ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a defect to report, never swallowed
            code, crash = 1, traceback.format_exc()
    return Outcome(code, out.getvalue(), err.getvalue(), crash)


def assert_refused(outcome: Outcome, *needles: str) -> None:
    """Exit 2, one line on stderr, naming each needle."""
    assert outcome.refused, outcome.describe()
    for needle in needles:
        assert needle.lower() in outcome.err.lower(), outcome.describe()
    assert "Traceback" not in outcome.err
