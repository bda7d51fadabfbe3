"""The canonical run table and its validation.

One row per (run, evaluation point). Canonical columns:

    run, params (N), tokens (D), flops (C = 6·N·D when absent), loss,
    optional: step, lr, batch_size, seq_len, unique_tokens, bits_w, bits_a, bits_kv, bits_post, group, seed

Besides these, a table carries any number of **metric columns** (``task_loss:hellaswag``, ``acc:hellaswag``,
``err_avg``...): every other column of the file passes through under its own name, and ``--columns`` maps
a ``kind:name`` metric like a canonical column (``acc:hellaswag=hellaswag_val_5shot__acc``). A consumer
that needs a metric converts it with :func:`validate` (``required``), which names the row of a bad value.

Validation names the file, the row and the field of every bad value in one line, so a user can fix
the input without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from scalinglab.errors import InputError

NUMERIC = (
    "params", "tokens", "flops", "loss", "step", "lr", "batch_size", "seq_len", "unique_tokens",
    "bits_w", "bits_a", "bits_kv", "bits_post", "seed",
)
TEXT = ("run", "group")
CANONICAL = ("run", *NUMERIC[:4], *NUMERIC[4:], "group")
# Quantities that are counts or sizes: zero or negative values make every law meaningless.
STRICTLY_POSITIVE = ("params", "tokens", "flops", "loss", "unique_tokens")
NON_NEGATIVE = ("step", "lr")

# FLOPs per parameter per token of a dense transformer's forward+backward pass (Kaplan et al. 2020, §2.1).
FLOPS_PER_PARAM_TOKEN = 6.0

# Names other tools write for our columns (case-insensitive, exact). Anything else needs --columns.
ALIASES: Mapping[str, str] = {
    "n": "params", "num_params": "params", "parameters": "params", "model_size": "params",
    "params_active_precise": "params", "non_embedding_params": "params",
    "d": "tokens", "num_tokens": "tokens", "train_tokens": "tokens", "data_size": "tokens",
    "c": "flops", "compute": "flops", "training_flops": "flops",
    "final_loss": "loss", "val_loss": "loss", "eval_loss": "loss", "validation_loss": "loss",
    "run_name": "run", "run_id": "run", "learning_rate": "lr", "steps": "step", "unique": "unique_tokens",
}


def is_metric_name(name: str) -> bool:
    """A metric column named in ``--columns``: ``kind:name`` (e.g. ``acc:hellaswag``, ``task_loss:piqa``)."""
    kind, sep, rest = name.partition(":")
    return bool(sep and kind.strip() and rest.strip())


def parse_column_map(text: str | None) -> dict[str, str]:
    """Parse ``params="Model Size",flops=C`` into {canonical: source}; quotes are optional."""
    if not text:
        return {}
    out: dict[str, str] = {}
    parts, buf, quote = [], "", None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            else:
                buf += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    for part in parts:
        if not part.strip():
            continue
        if "=" not in part:
            raise InputError(f"--columns: '{part}' is not of the form canonical=source (e.g. params=\"Model Size\")")
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key not in CANONICAL and not is_metric_name(key):
            raise InputError(f"--columns: '{key}' is not a canonical column; expected one of {', '.join(CANONICAL)} "
                             f"or a metric named kind:name (e.g. acc:hellaswag)")
        if not value:
            raise InputError(f"--columns: no source column given for '{key}'")
        out[key] = value
    return out


def _canonical_name(name: str) -> str | None:
    """The canonical column a file's column name stands for (case and surrounding spaces ignored)."""
    low = name.strip().lower()
    return low if low in CANONICAL else ALIASES.get(low)


def canonicalize(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str) -> pd.DataFrame:
    """Rename a raw frame to canonical names: explicit map first, then names and aliases (case-insensitive).

    Two columns that both stand for one canonical column (``params`` and ``N``, or ``Loss`` and
    ``val_loss``) are refused, naming both, unless ``--columns`` says which one to use: silently keeping
    one and dropping the other would fit whichever happened to come first.
    """
    columns = dict(columns or {})
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{source}: column '{repeated[0]}' appears more than once in the header")
    missing = [src for src in columns.values() if src not in frame.columns]
    if missing:
        found = ", ".join(names)
        raise InputError(f"{source}: --columns names column '{missing[0]}' which the file does not have (found: {found})")
    rename = {src: canon for canon, src in columns.items()}
    claimed: dict[str, str] = {}
    for col in frame.columns:
        if col in rename:
            continue
        canon = _canonical_name(str(col))
        if canon is None or canon in columns:
            continue  # an explicit --columns choice wins over a same-named column
        if canon in claimed:
            raise InputError(f"{source}: columns '{claimed[canon]}' and '{col}' both give '{canon}'; keep one, or "
                             f"choose with --columns {canon}=NAME")
        claimed[canon] = str(col)
        rename[col] = canon
    # Other columns pass through as metrics under their own names, unless that name is taken by a
    # canonical column (a second 'loss' would make the table ambiguous).
    taken = set(rename.values())
    keep = [c for c in frame.columns
            if c in rename or (_canonical_name(str(c)) is None and str(c) not in taken)]
    out = frame[keep].rename(columns=rename)
    # Row numbers a user can find in the file: 1-based data rows.
    rows = frame.attrs.get("row_numbers")
    out.attrs["row_numbers"] = np.arange(1, len(frame) + 1) if rows is None else np.asarray(rows)
    out.attrs["source"] = source
    return out


def _show(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def _row(table: pd.DataFrame, i: int) -> int:
    # No default array here: building np.arange(len(table)) on every call made per-row use quadratic.
    rows = table.attrs.get("row_numbers")
    return int(rows[i]) if rows is not None else i + 1


MISSING = "is empty or NaN; a number is required"


def _number(value) -> float | str:
    """A cell as a float (NaN for an empty cell), or the reason it is not a number (for the one-line error)."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return np.nan  # missing: allowed in optional columns, refused by validate() where the consumer needs it
    if isinstance(value, bool | np.bool_):
        return f"{value!r} is a boolean, not a number"
    if isinstance(value, pd.Timedelta | np.timedelta64 | pd.Timestamp | np.datetime64):
        return f"{str(value)!r} is a duration or date, not a number"
    if isinstance(value, int | np.integer):
        try:
            x = float(value)
        except OverflowError:
            digits = str(value)
            return f"an integer of {len(digits.lstrip('-'))} digits is too large for a float"
        return x if np.isfinite(x) else f"{value!r} is too large"
    if isinstance(value, float | np.floating):
        x = float(value)
        return x if np.isfinite(x) else f"{value!r} is not a finite number"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return np.nan
        if text.lower() in ("true", "false"):
            return f"{_clip(value)!r} is a boolean, not a number"
        try:
            x = float(text)
        except ValueError:
            return f"{_clip(value)!r} is not a number"
        if np.isfinite(x):
            return x
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            return f"{_clip(value)!r} is not a finite number"
        return f"{_clip(value)!r} is too large for a float"
    return f"{_clip(repr(value))} is not a number"


def _all_finite_floats(raw: pd.Series) -> np.ndarray | None:
    """A text column as float64 when every cell is a finite number (NumPy parses as float() does), else None."""
    if pd.api.types.infer_dtype(raw, skipna=False) != "string":  # one C pass (a Python loop cost 0.6 µs a cell)
        return None
    try:  # object → float64 calls float() on each str: its semantics, twice as fast as via a str array
        arr = raw.to_numpy(dtype=object).astype(np.float64)
    except (ValueError, OverflowError):
        return None
    return arr if np.isfinite(arr).all() else None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def coerce_numeric(table: pd.DataFrame, source: str, columns: Iterable[str] = NUMERIC) -> pd.DataFrame:
    """Convert numeric columns, naming the first row and field that is not a finite number.

    Booleans, durations, dates, text such as ``'n/a'`` or ``'nan'``, infinities and integers beyond float
    range are refused with the value as the file wrote it. Empty cells become NaN: an optional column
    may have gaps, and :func:`validate` refuses them in the columns a consumer needs.
    """
    table = table.copy()
    for col in columns:
        if col not in table.columns:
            continue
        raw = table[col]
        if pd.api.types.is_float_dtype(raw.dtype) or (pd.api.types.is_integer_dtype(raw.dtype)
                                                       and not pd.api.types.is_bool_dtype(raw.dtype)):
            arr = raw.to_numpy(dtype=float)
            ok = ~np.isinf(arr)
            cells = raw.tolist()
        else:
            cells = raw.tolist()
            arr = _all_finite_floats(raw)
            if arr is not None:  # the common case: every cell a finite number, parsed in one pass
                ok = np.ones(len(arr), dtype=bool)
            else:  # cell by cell, to allow empty cells and to name the first bad one
                parsed = [_number(v) for v in cells]
                ok = np.array([isinstance(v, float) for v in parsed], dtype=bool)
                arr = np.array([v if isinstance(v, float) else np.nan for v in parsed], dtype=float)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            reason = _number(cells[i])
            raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {reason}")
        table[col] = arr
    for col in TEXT:
        if col in table.columns:
            table[col] = table[col].astype(str)
    if columns is NUMERIC:
        _metrics_as_numbers(table)
    return table


def _metrics_as_numbers(table: pd.DataFrame) -> None:
    """Metric columns (anything not canonical) read as text become numbers when every cell is a number or
    empty; others stay as they are, and :func:`validate` names the bad cell if a consumer needs the column."""
    for col in table.columns:
        dtype = table[col].dtype
        if col in CANONICAL or not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        raw = table[col]
        values = pd.to_numeric(raw, errors="coerce")
        empty = raw.isna() | (raw.astype(str).str.strip() == "")
        if not (values.isna() & ~empty).any():
            table[col] = values.astype(float)


def derive(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Fill the missing one of tokens / flops from C = 6·N·D (when params is known)."""
    table = table.copy()
    has = set(table.columns)
    if "params" in has and "tokens" in has and "flops" not in has:
        table["flops"] = FLOPS_PER_PARAM_TOKEN * table["params"] * table["tokens"]
    elif "params" in has and "flops" in has and "tokens" not in has:
        table["tokens"] = table["flops"] / (FLOPS_PER_PARAM_TOKEN * table["params"])
    elif "tokens" in has and "flops" in has and "params" not in has:
        table["params"] = table["flops"] / (FLOPS_PER_PARAM_TOKEN * table["tokens"])
    for col in ("params", "tokens", "flops"):
        if col in table.columns and col not in has:
            bad = np.flatnonzero(np.isinf(table[col].to_numpy(dtype=float)))
            if bad.size:
                i = int(bad[0])
                given = ", ".join(f"{c}={table[c].iloc[i]:.6g}" for c in ("params", "tokens", "flops") if c in has)
                raise InputError(f"{source}: row {_row(table, i)}: the derived '{col}' (from C = 6·N·D with {given}) "
                                 "is not a finite number; the inputs are out of range")
    if "run" not in has:
        rows = table.attrs.get("row_numbers")
        rows = np.arange(1, len(table) + 1) if rows is None else np.asarray(rows)
        table["run"] = ("row" + pd.Series(rows, index=table.index).astype(str)).astype(str)
        table.attrs["run_generated"] = True
    return table


def validate(table: pd.DataFrame, required: Iterable[str], source: str, min_points: int = 1,
             n_params: int | None = None, positive: Iterable[str] = ()) -> pd.DataFrame:
    """Check presence, positivity, duplicates and count of the columns a consumer needs.

    Required metric columns (non-canonical) are converted to numbers here, naming the row of a bad
    value; ``positive`` lists further columns that must be > 0 (a law fitted in log space).
    """
    required = list(required)
    positive = set(positive)
    absent = [c for c in required if c not in table.columns]
    if absent:
        found = ", ".join(c for c in table.columns if c != "run") or "none"
        raise InputError(
            f"{source}: missing column '{absent[0]}' (needed: {', '.join(required)}; canonical columns found: "
            f"{found}; map other names with --columns {absent[0]}=NAME)"
        )
    metrics = [c for c in required if c not in CANONICAL]
    if metrics:
        attrs = dict(table.attrs)
        table = coerce_numeric(table, source, metrics)
        table.attrs = attrs
    for col in required:
        numeric = col in NUMERIC or col in metrics
        gaps = np.flatnonzero(np.isnan(table[col].to_numpy(dtype=float))) if numeric else np.array([], int)
        if gaps.size:
            raise InputError(f"{source}: row {_row(table, int(gaps[0]))}, field '{col}': {MISSING}")
        if col in STRICTLY_POSITIVE or col in positive:
            bad = np.flatnonzero(~(table[col].to_numpy(dtype=float) > 0))
            if bad.size:
                i = int(bad[0])
                raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {_show(table[col].iloc[i])} must be > 0")
        elif col in NON_NEGATIVE:
            bad = np.flatnonzero(table[col].to_numpy(dtype=float) < 0)
            if bad.size:
                i = int(bad[0])
                raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {_show(table[col].iloc[i])} must be >= 0")
    key = [c for c in table.columns if c in CANONICAL and not (c == "run" and table.attrs.get("run_generated"))]
    dup = table.duplicated(subset=key, keep=False).to_numpy()
    if dup.any():
        rows = [_row(table, int(i)) for i in np.flatnonzero(dup)[:2]]
        raise InputError(f"{source}: rows {rows[0]} and {rows[1]} are duplicates (same values in every field)")
    if len(table) < min_points:
        why = f", but the law has {n_params} parameters to fit" if n_params is not None else ""
        raise InputError(f"{source}: {len(table)} usable rows{why}; need at least {min_points} rows")
    return table
