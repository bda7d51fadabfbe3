"""One style for every command's output: rich tables for people, ``--json`` for programs.

A command that prints results takes ``--json`` (:data:`JSON_HELP`): it then prints exactly one JSON
document on stdout — an object, or an array for a list of rows — and nothing else there (progress and
errors go to stderr). Without it, results are rich tables (:func:`table`), never hand-padded columns.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.table import Table

__all__ = ["JSON_HELP", "jsonable", "print_json", "json_or_tables", "table", "key_value_table"]

JSON_HELP = "Print one JSON document on stdout (an object, or an array of rows) instead of the tables."


def jsonable(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays, tuples and paths made plain, and NaN/inf as null (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):  # numpy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def print_json(obj: Any) -> None:
    """Print ``obj`` as one strict JSON document on stdout."""
    print(json.dumps(jsonable(obj), indent=2, allow_nan=False))


def json_or_tables(as_json: bool, body: Callable[[], Any]) -> Any:
    """Run a command's ``body`` (which prints its own tables and returns its results); with ``--json`` its
    prints go to stderr and the results are printed as JSON on stdout."""
    if not as_json:
        return body()
    with contextlib.redirect_stdout(sys.stderr):
        result = body()
    print_json(result)
    return result


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
          right: Sequence[str] = ()) -> Table:
    """A rich table: ``columns`` in order, columns named in ``right`` right-aligned (numbers)."""
    t = Table(title=title, title_justify="left")
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        t.add_row(*("-" if v is None else str(v) for v in row))
    return t


def key_value_table(values: dict[str, Any], title: str | None = None) -> Table:
    """Two columns, quantity and value, one row per key."""
    t = Table(title=title, title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k, v in values.items():
        t.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    return t
