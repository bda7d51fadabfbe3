"""Atomic file writes: write a temporary file beside the target, then rename it over the target.

    from scalinglab.atomic import atomic_write, write_text_atomic
    write_text_atomic(path, json.dumps(obj))
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))   # any writer that takes a path

A reader (another worker, a resumed run) sees either the old file or the new one, never half of one:
``os.replace`` is atomic on POSIX and Windows when both names are on one filesystem, which a temporary
name in the target's own folder guarantees. A writer killed midway leaves only a hidden ``.NAME.*.tmp``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text_atomic"]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary path beside ``path``, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
