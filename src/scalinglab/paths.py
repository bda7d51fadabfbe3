"""Output paths checked before the work starts: a one-line error beats a traceback after an hour of training.

``output_file`` is for ``--out fit.json`` / ``--plot fit.png``: not a directory, its parent a directory
(created if missing) that we may write. ``output_dir`` is for ``--out DIR`` of a checkpoint: not an
existing file, and a writable place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from scalinglab.errors import InputError

__all__ = ["output_file", "output_dir"]


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, option: str) -> None:
    """``path`` does not exist yet: the nearest existing ancestor must be a writable directory."""
    base = _nearest_existing(path.parent if path.parent != Path("") else Path("."))
    if not base.is_dir():
        raise InputError(f"{option}: cannot create {path}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{option}: cannot create {path}: {base} is not writable")


def output_file(path: str | Path, option: str = "--out", suffixes: Sequence[str] | None = None) -> Path:
    """A file path we can write (atomically, beside it); InputError naming ``option`` otherwise."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InputError(f"{option}: {path} should end in {', '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{option}: {path} is a directory; give a file name (e.g. {path / 'fit.json'})")
    if path.exists():
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise InputError(f"{option}: {path} exists and is not writable")
        return path
    _check_creatable(path, option)
    return path


def output_dir(path: str | Path, option: str = "--out") -> Path:
    """A directory we can create or write into; never an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option}: {path} is an existing file; give a directory for the checkpoint")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option}: {path} is not writable")
        return path
    _check_creatable(path / "x", option)
    return path
