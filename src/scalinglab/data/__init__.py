"""Bundled public data (see README.md here): paths for the demo, tests and examples."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(relative: str) -> Path:
    """Filesystem path of a bundled file, e.g. ``path("gemstones/cool_end.jsonl")``."""
    return Path(str(files("scalinglab.data").joinpath(relative)))


GEMSTONES = "gemstones/cool_end.jsonl"
PTQ_LADDER = "ptq_ladder/evals.csv"
PTQ_LADDER_SHAKESPEARE = "ptq_ladder/evals_shakespeare.csv"  # the same configs on real text, D/N 8–250
