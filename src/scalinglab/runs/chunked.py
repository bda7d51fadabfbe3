"""Streaming reads of CSV/TSV and Parquet run tables: a chunk of rows at a time, each validated.

A tracker's loss-curve export easily has millions of rows. Reading it whole keeps the parser's
untyped frame (text cells, Python objects) and the typed table in memory together; here the file is
parsed ``chunk_rows`` rows at a time (pandas' chunked CSV parser, pyarrow's Parquet record batches),
and each chunk is canonicalised and converted to numbers at once (:func:`canonicalize`,
:func:`coerce_numeric`), so only the typed columns accumulate: peak memory is the final table plus
one chunk, and the work is linear in rows.

Each chunk carries its rows' numbers in the file (1-based data rows, counted across chunks), so a bad
value in chunk 7 is reported as ``file: row 6000123, field 'loss': ...`` — the same line a one-shot
read gives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.runs.schema import canonicalize, coerce_numeric

__all__ = ["CHUNK_ROWS", "CHUNKED_SUFFIXES", "iter_chunks", "read_chunked"]

CHUNK_ROWS = 500_000  # ~40 MB of typed columns per chunk: small next to the table, large enough to amortise
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
CHUNKED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _raw_chunks(path: Path, columns: Mapping[str, str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Untyped chunks of the file (pandas/pyarrow errors become one-line InputErrors)."""
    suffix = path.suffix.lower()
    kind = suffix.lstrip(".")
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as pf:
                for batch in pf.iter_batches(batch_size=chunk_rows):
                    yield batch.to_pandas()
            return
        # Every cell as the text the file holds (no NA guessing), so errors quote what the user wrote; the
        # header as written (a repeated name stays repeated, for canonicalize to refuse).
        sep = "\t" if suffix == ".tsv" else ","
        text = {"sep": sep, "header": None, "dtype": object, "keep_default_na": False, "skipinitialspace": True}
        first = pd.read_csv(path, nrows=1, **text)
        if first.empty:
            return
        header = [str(c).strip() for c in first.iloc[0]]
        try:
            reader = pd.read_csv(path, skiprows=1, chunksize=chunk_rows, **text)
        except pd.errors.EmptyDataError:  # a header and no rows
            yield pd.DataFrame(columns=header)
            return
        with reader:
            for chunk in reader:
                chunk.columns = header
                yield chunk
    except InputError:
        raise
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (cannot decode as UTF-8)") from None
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InputError(f"{path}: cannot read as {kind} ({_reason(exc)})") from None


def iter_chunks(path: str | Path, columns: Mapping[str, str] | None = None,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Canonical, numeric chunks of a CSV/TSV/Parquet file, with global row numbers in ``attrs``."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    path = Path(path)
    columns = dict(columns or {})
    offset = 0
    for raw in _raw_chunks(path, columns, chunk_rows):
        raw.attrs["row_numbers"] = np.arange(offset + 1, offset + len(raw) + 1)
        offset += len(raw)
        table = canonicalize(raw, columns, str(path))
        yield coerce_numeric(table, str(path))


def read_chunked(path: str | Path, columns: Mapping[str, str] | None = None,
                 chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """The whole file as one canonical table, read and validated chunk by chunk."""
    parts = [c for c in iter_chunks(path, columns, chunk_rows) if len(c)]
    if not parts:
        raise InputError(f"{path}: no rows")
    rows = np.concatenate([p.attrs["row_numbers"] for p in parts])
    for p in parts:
        p.attrs = {}  # pandas compares every part's attrs when concatenating (and arrays cannot be)
    table = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    del parts
    table.attrs = {"row_numbers": rows, "source": str(path)}
    return table
