"""Run the `scalinglab` entry point in-process, as a user's shell would, and collect what it printed."""

from __future__ import annotations

import pytest

from scalinglab.cli import main


def run(argv, capsys):
    """(exit status, stdout, stderr) of ``scalinglab ARGV``; every command ends in SystemExit."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
