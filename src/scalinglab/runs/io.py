"""Read user files (CSV, JSONL, Parquet), a run store (SQLite), a W&B CSV export or TensorBoard event
files into the canonical run table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.jsonl import iter_objects
from scalinglab.runs.schema import canonicalize, coerce_numeric, derive, parse_column_map

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _read_jsonl(path: Path) -> pd.DataFrame:
    records, lines = [], []
    for lineno, obj in iter_objects(path):
        records.append(obj)
        lines.append(lineno)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["row_numbers"] = np.asarray(lines)
    return frame


def _read_raw(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
        if suffix == ".json":
            frame = pd.read_json(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", skipinitialspace=True)
        else:
            raise InputError(f"{path}: unknown file type '{suffix}'; expected .csv, .tsv, .jsonl, .json, .parquet or .db")
    except InputError:
        raise
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (cannot decode as UTF-8)") from None
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot read as {suffix.lstrip('.')} ({reason})") from None
    return frame


def read_runs(path: str | Path, columns: Mapping[str, str] | str | None = None) -> pd.DataFrame:
    """Load runs from a file into the canonical table (numeric, derived tokens/flops, row numbers kept).

    ``columns`` maps canonical names to the file's names, as a dict or as the CLI's
    ``params="Model Size",loss=final`` text. Consumers call :func:`scalinglab.runs.schema.validate`
    with the columns they need.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if isinstance(columns, str):
        columns = parse_column_map(columns)
    from scalinglab.runs.importers import tensorboard, wandb

    if tensorboard.is_event_path(path):  # TensorBoard event file or log directory
        raw, columns = tensorboard.read_tensorboard(path, columns or {}), None
    elif path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV, JSONL, Parquet or SQLite file "
                         "(or a TensorBoard log directory)")
    elif path.suffix.lower() in SQLITE_SUFFIXES:
        from scalinglab.runs.store import load_run_table

        # Final evaluations only: a cosine run's intermediate points are not shorter runs (DESIGN §3).
        raw = load_run_table(path, final_only=True)
    else:
        raw = _read_raw(path)
        if wandb.is_wandb_export(raw):  # one W&B run: its file stem names the run
            raw, columns = wandb.from_wandb(raw, columns or {}, str(path), path.stem), None
    if raw.empty:
        raise InputError(f"{path}: no rows")
    table = canonicalize(raw, columns, str(path))
    table = coerce_numeric(table, str(path))
    table = derive(table, str(path))
    return table
