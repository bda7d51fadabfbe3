"""Read user files (CSV, JSONL, Parquet), a run store (SQLite), a W&B CSV export or TensorBoard event
files into the canonical run table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.jsonl import iter_objects
from scalinglab.runs.chunked import CHUNKED_SUFFIXES, read_chunked
from scalinglab.runs.schema import canonicalize, coerce_numeric, derive, parse_column_map

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_MAGIC = b"SQLite format 3\x00"


def _read_jsonl(path: Path) -> pd.DataFrame:
    records, lines = [], []
    for lineno, obj in iter_objects(path):
        records.append(obj)
        lines.append(lineno)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["row_numbers"] = np.asarray(lines)
    return frame


def _read_json(path: Path) -> pd.DataFrame:
    """A JSON array of row objects, or an object of equal-length column arrays."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, list):
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise InputError(f"{path}: item {i + 1} of the array is not an object; expected one object per run")
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict):
        lengths = {k: len(v) if isinstance(v, list) else None for k, v in data.items()}
        bad = [k for k, n in lengths.items() if n is None]
        if bad or len(set(lengths.values())) > 1:
            raise InputError(f"{path}: expected an array of row objects or an object of equal-length column arrays")
        return pd.DataFrame(data)
    raise InputError(f"{path}: expected an array of row objects or an object of column arrays, "
                      f"got a JSON {type(data).__name__}")


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    """Every cell as the text the file holds (no NA guessing), so errors quote what the user wrote."""
    grid = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, skipinitialspace=True)
    frame = grid.iloc[1:].reset_index(drop=True)
    frame.columns = [str(c).strip() for c in grid.iloc[0]]
    return frame


def _read_raw(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
        if suffix == ".json":
            frame = _read_json(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = _read_csv(path, "\t" if suffix == ".tsv" else ",")
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


def _read_store(path: Path, all_evals: bool = False) -> pd.DataFrame:
    from scalinglab.runs.store import load_run_table

    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        raise InputError(f"{path}: not a SQLite database (expected a run store written by `scalinglab ladder run`)")
    try:
        # Final evaluations only unless asked: a cosine run's intermediate points are not shorter runs.
        return load_run_table(path, final_only=not all_evals)
    except InputError as exc:
        # The database driver's text can quote a whole query; keep only its last clause (the reason).
        text = str(exc)
        if "Execution failed on sql" in text:
            raise InputError(f"{path}: not a scalinglab run store ({text.rsplit(': ', 1)[-1].rstrip(')')})") from None
        raise


def _is_wandb_csv(path: Path) -> bool:
    """Whether a CSV's header is a W&B export's (read whole, then mapped by the importer)."""
    from scalinglab.runs.importers import wandb

    if path.suffix.lower() not in (".csv", ".tsv"):
        return False
    try:
        header = pd.read_csv(path, nrows=0, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return False  # the chunked reader reports what is wrong with the file
    return wandb.is_wandb_export(header)


def read_runs(path: str | Path, columns: Mapping[str, str] | str | None = None, all_evals: bool = False) -> pd.DataFrame:
    """Load runs from a file into the canonical table (numeric, derived tokens/flops, row numbers kept).

    ``columns`` maps canonical names to the file's names, as a dict or as the CLI's
    ``params="Model Size",loss=final`` text. Consumers call :func:`scalinglab.runs.schema.validate`
    with the columns they need. A run store gives each run's final evaluation, or with ``all_evals`` every
    evaluation (``is_final`` marks the last; the chain's step 2 reads them all).
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
    else:
        try:
            if path.suffix.lower() in CHUNKED_SUFFIXES and not _is_wandb_csv(path):
                # CSV/TSV/Parquet stream in chunks, each canonicalised and coerced (bounded memory, linear time).
                return derive(read_chunked(path, columns), str(path))
            raw = _read_store(path, all_evals) if path.suffix.lower() in SQLITE_SUFFIXES else _read_raw(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
        if wandb.is_wandb_export(raw):  # one W&B run: its file stem names the run
            raw, columns = wandb.from_wandb(raw, columns or {}, str(path), path.stem), None
    if raw.empty:
        raise InputError(f"{path}: no rows")
    table = canonicalize(raw, columns, str(path))
    table = coerce_numeric(table, str(path))
    table = derive(table, str(path))
    return table
