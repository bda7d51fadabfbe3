"""JSON Lines: one object per line, blank lines skipped, a bad line named by its number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from scalinglab.errors import InputError


def iter_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; InputError naming the line for anything else."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}: line {lineno} is not a JSON object")
            yield lineno, obj
