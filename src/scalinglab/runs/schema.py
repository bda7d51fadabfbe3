"""The canonical run table (DESIGN §3) and its validation.

One row per (run, evaluation point). Canonical columns:

    run, params (N), tokens (D), flops (C = 6·N·D when absent), loss,
    optional: step, lr, batch_size, seq_len, unique_tokens, bits_w, bits_a, bits_kv, bits_post, group, seed

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
        if key not in CANONICAL:
            raise InputError(f"--columns: '{key}' is not a canonical column; expected one of {', '.join(CANONICAL)}")
        if not value:
            raise InputError(f"--columns: no source column given for '{key}'")
        out[key] = value
    return out


def canonicalize(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str) -> pd.DataFrame:
    """Rename a raw frame to canonical names: explicit map first, then exact names, then aliases."""
    columns = dict(columns or {})
    missing = [src for src in columns.values() if src not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise InputError(f"{source}: --columns names column '{missing[0]}' which the file does not have (found: {found})")
    rename = {src: canon for canon, src in columns.items()}
    taken = set(rename.values())
    for col in frame.columns:
        if col in rename:
            continue
        name = str(col)
        canon = name if name in CANONICAL else ALIASES.get(name.lower())
        if canon and canon not in taken and canon not in frame.columns.difference([col]).tolist():
            rename[col] = canon
            taken.add(canon)
    keep = [c for c in frame.columns if c in rename]
    out = frame[keep].rename(columns=rename)
    # Row numbers a user can find in the file: 1-based data rows.
    out.attrs["row_numbers"] = np.asarray(frame.attrs.get("row_numbers", np.arange(1, len(frame) + 1)))
    out.attrs["source"] = source
    return out


def _show(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def _row(table: pd.DataFrame, i: int) -> int:
    return int(table.attrs.get("row_numbers", np.arange(1, len(table) + 1))[i])


def coerce_numeric(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Convert numeric columns, naming the first row and field that is not a finite number."""
    table = table.copy()
    for col in NUMERIC:
        if col not in table.columns:
            continue
        raw = table[col]
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        bad = values.isna() & raw.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {raw.iloc[i]!r} is not a number")
        arr = values.to_numpy()
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            i = int(np.flatnonzero(nonfinite)[0])
            raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {raw.iloc[i]!r} is not a finite number")
        table[col] = arr
    for col in TEXT:
        if col in table.columns:
            table[col] = table[col].astype(str)
    return table


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
    if "run" not in has:
        table["run"] = [f"row{_row(table, i)}" for i in range(len(table))]
        table.attrs["run_generated"] = True
    return table


def validate(table: pd.DataFrame, required: Iterable[str], source: str, min_points: int = 1) -> pd.DataFrame:
    """Check presence, positivity, duplicates and count of the columns a consumer needs."""
    required = list(required)
    absent = [c for c in required if c not in table.columns]
    if absent:
        found = ", ".join(c for c in table.columns if c != "run") or "none"
        raise InputError(
            f"{source}: missing column '{absent[0]}' (needed: {', '.join(required)}; canonical columns found: "
            f"{found}; map other names with --columns {absent[0]}=NAME)"
        )
    for col in required:
        if col in STRICTLY_POSITIVE:
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
        raise InputError(f"{source}: {len(table)} usable rows, but the law has {min_points} parameters to fit; "
                         f"need at least {min_points} rows")
    return table
