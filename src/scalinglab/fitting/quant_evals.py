"""Quantized evaluations as a table: one row per (run, precision), validated, with the loss increase derived.

The contract (CSV, TSV, JSONL, Parquet, a pandas frame, or a run store whose ladder quantized its runs —
:func:`scalinglab.runs.quant_evals.read_quant_evals` — with ``run_id`` read as ``run``):

    params, tokens, bits, loss, loss_float                          required
    run, method, activations, group_size, weight_bytes              optional

One fit reads one config family: ``--quant-method rtn`` picks a method, ``rtn:group_size=8,activations=none``
also its group size and activation mode (the columns that make two rows of one run at one bit width differ).

``loss`` is the held-out loss after quantizing the run's final weights to ``bits`` bits and ``loss_float`` the
same run's loss before quantization, so ``ptq_delta = loss − loss_float`` is the degradation the ``ptq`` law
predicts. ``bits_post`` (the run table's canonical precision column) is read as ``bits``. Without a ``run``
column the rows of one run are recognised by their (params, tokens, loss_float).

Every problem is one line naming the file, the row and the field: a missing column, bits outside 2…16,
several quantization methods mixed without a choice, one run with two float losses, a (run, bits) pair
given twice. Rows whose measured increase is not positive (8-bit rounding can leave the loss unchanged or
lower it by noise) cannot enter a fit in log space: they are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.laws.ptq import BITS_RANGE
from scalinglab.runs.schema import validate

REQUIRED = ("params", "tokens", "bits", "loss", "loss_float")
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")  # a run store: its quant_evals table is read (runs.io's suffixes)
TARGET = "ptq_delta"
FLOAT_RTOL = 1e-9  # the rows of one run repeat its float loss: equal up to the rounding of a text file


@dataclass
class QuantEvals:
    """The rows a ``ptq`` fit reads (``rows``: δ > 0), each run's float loss (``runs``) and what was left out."""

    rows: pd.DataFrame  # run, params, tokens, flops, bits, loss, loss_float, ptq_delta (> 0)
    all_rows: pd.DataFrame  # every validated row, δ ≤ 0 included (a hold-out scores them all)
    runs: pd.DataFrame  # one row per run: run, params, tokens, flops, loss (= loss_float)
    source: str
    method: str | None = None
    excluded_nonpositive: int = 0
    summary: dict = field(default_factory=dict)


def _row(table: pd.DataFrame, i: int) -> int:
    rows = table.attrs.get("row_numbers")
    return int(rows[i]) if rows is not None else i + 1


def _subset(table: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    out = table[mask].copy()
    out.attrs = dict(table.attrs)
    rows = np.asarray(table.attrs.get("row_numbers", np.arange(1, len(table) + 1)))
    out.attrs["row_numbers"] = rows[mask]
    return out.reset_index(drop=True)


CONFIG_COLUMNS = ("activations", "group_size")  # besides the method, what makes two configs at one bit width differ


def parse_selector(text: str | None) -> tuple[str | None, dict[str, str]]:
    """``rtn`` or ``rtn:group_size=8,activations=none`` → (method, {column: value})."""
    if text is None or not text.strip():
        return None, {}
    name, _, opts = text.partition(":")
    filters = {}
    for part in filter(str.strip, opts.split(",")):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in CONFIG_COLUMNS:
            raise InputError(f"--quant-method: '{part}' is not of the form key=value with key one of "
                             f"{', '.join(CONFIG_COLUMNS)} (e.g. rtn:group_size=8)")
        filters[key.strip()] = value.strip()
    return name.strip(), filters


def _text(col: pd.Series) -> pd.Series:
    """Config values as text for matching: 8, 8.0 and '8' agree."""
    num = pd.to_numeric(col, errors="coerce")
    return col.astype(str).str.strip().where(num.isna(), num.map(lambda v: f"{v:g}"))


def _choose_method(table: pd.DataFrame, selector: str | None, source: str) -> tuple[pd.DataFrame, str | None]:
    """The rows of one quantization config family (one method; one activations mode and group size)."""
    method, filters = parse_selector(selector)
    if "method" not in table.columns:
        if method is not None:
            raise InputError(f"{source}: --quant-method {method!r} given but the table has no 'method' column")
        return table, None
    names = table["method"].astype(str).str.strip()
    present = sorted(set(names))
    if method is None:
        if len(present) > 1:
            raise InputError(f"{source}: the table mixes quantization methods ({', '.join(present)}); their losses "
                             "follow different laws — choose one with --quant-method")
        method = present[0] if present else None
    elif method not in present:
        raise InputError(f"{source}: --quant-method {method!r} is not in the table's 'method' column "
                         f"(found: {', '.join(present)})")
    mask = (names == method).to_numpy().copy()
    for key, value in filters.items():
        if key not in table.columns:
            raise InputError(f"{source}: --quant-method filters on '{key}' but the table has no such column")
        col = _text(table[key])
        found = sorted(set(col[mask]))
        mask = mask & (col == value).to_numpy()
        if not mask.any():
            raise InputError(f"{source}: no {method} rows with {key}={value} (found: {', '.join(found)})")
    return _subset(table, mask), selector.strip() if selector else method


def _read_store(path, source: str) -> pd.DataFrame:
    """A run store's quantized evaluations (the ladder's ``quantize:`` step) as a table of this contract."""
    from scalinglab.runs.quant_evals import read_quant_evals as read_store

    frame = read_store(path).rename(columns={"run_id": "run"})
    if frame.empty:
        raise InputError(f"{source}: the run store holds no quantized evaluations (give the ladder spec a "
                         "quantize: list and run it again)")
    frame.attrs = {"source": source, "row_numbers": np.arange(1, len(frame) + 1)}
    return frame


def _run_labels(table: pd.DataFrame, source: str) -> np.ndarray:
    """The run of each row: the table's ``run`` column, else one run per (params, tokens, loss_float)."""
    if "run" in table.columns and not table.attrs.get("run_generated"):
        return table["run"].astype(str).to_numpy()
    keys = table[["params", "tokens", "loss_float"]].to_numpy(float)
    return np.array([f"N={n:.6g},D={d:.6g},L={lf:.6g}" for n, d, lf in keys])


def load_quant_evals(data, source: str | None = None, method: str | None = None, columns=None) -> QuantEvals:
    """A file path or a frame → :class:`QuantEvals` (validated; δ derived; δ ≤ 0 rows counted and left out)."""
    from pathlib import Path

    if isinstance(data, str | Path) and Path(data).suffix.lower() in STORE_SUFFIXES and Path(data).is_file():
        source = source or str(data)
        table = _read_store(data, source)
    elif isinstance(data, str | Path):
        from scalinglab.runs.io import read_runs

        table = read_runs(data, columns)
        source = source or str(data)
    else:
        from scalinglab.runs.schema import coerce_numeric

        source = source or str(data.attrs.get("source", "table"))
        attrs = dict(data.attrs)
        table = coerce_numeric(data, source)  # a frame gets the checks a file gets from read_runs
        table.attrs = attrs
    if "bits" not in table.columns and "bits_post" in table.columns:
        table = table.rename(columns={"bits_post": "bits"})
    if "loss_float" not in table.columns and "loss" in table.columns:
        raise InputError(f"{source}: missing column 'loss_float' (the run's loss before quantization); the ptq law "
                         "fits loss − loss_float, one row per (run, bits)")
    table, method = _choose_method(table, method, source)
    if table.empty:
        raise InputError(f"{source}: no rows left for --quant-method {method!r}")
    # The bits join the canonical columns for validate's duplicate-row check (two runs may share a loss).
    table["bits_post"] = table["bits"]
    table = validate(table, REQUIRED, source, positive=("bits", "loss_float")).drop(columns="bits_post")
    bits = table["bits"].to_numpy(float)
    bad = np.flatnonzero((bits < BITS_RANGE[0]) | (bits > BITS_RANGE[1]))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{source}: row {_row(table, i)}, field 'bits': {bits[i]:g} is outside "
                         f"{BITS_RANGE[0]:g}…{BITS_RANGE[1]:g} bits")
    table["run"] = _run_labels(table, source)

    # One float loss per run, one row per (run, bits): anything else is two different things under one name.
    first = table.groupby("run", sort=False)["loss_float"].transform("first").to_numpy(float)
    lf = table["loss_float"].to_numpy(float)
    bad = np.flatnonzero(~np.isclose(lf, first, rtol=FLOAT_RTOL, atol=0.0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{source}: row {_row(table, i)}, field 'loss_float': {lf[i]:g} differs from "
                         f"{first[i]:g} in an earlier row of run {table['run'].iloc[i]!r}; one run has one float loss")
    for col in ("params", "tokens"):
        v = table[col].to_numpy(float)
        ref = table.groupby("run", sort=False)[col].transform("first").to_numpy(float)
        bad = np.flatnonzero(v != ref)
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{source}: row {_row(table, i)}, field '{col}': {v[i]:g} differs from {ref[i]:g} in an "
                             f"earlier row of run {table['run'].iloc[i]!r}")
    dup = table.duplicated(subset=["run", "bits"], keep=False).to_numpy()
    if dup.any():
        i, j = np.flatnonzero(dup)[:2]
        varying = [c for c in CONFIG_COLUMNS if c in table.columns and table[c].nunique() > 1]
        hint = (f" (configs differ in {', '.join(varying)}: choose one with --quant-method "
                f"{method or 'METHOD'}:{varying[0]}=VALUE)" if varying else "")
        raise InputError(f"{source}: rows {_row(table, int(i))} and {_row(table, int(j))} both give run "
                         f"{table['run'].iloc[int(i)]!r} at {bits[int(i)]:g} bits{hint}")

    table[TARGET] = table["loss"].to_numpy(float) - lf
    if "flops" not in table.columns:
        table["flops"] = 6.0 * table["params"] * table["tokens"]
    runs = table.drop_duplicates("run")[["run", "params", "tokens", "flops", "loss_float"]].rename(
        columns={"loss_float": "loss"}).reset_index(drop=True)
    runs.attrs = {"source": source}
    keep = table[TARGET].to_numpy(float) > 0
    rows = _subset(table, keep)
    if rows.empty:
        raise InputError(f"{source}: no row has loss > loss_float; there is no degradation to fit")
    dn = rows["tokens"].to_numpy(float) / rows["params"].to_numpy(float)
    summary = {"runs": int(runs.shape[0]), "rows": int(rows.shape[0]), "excluded_nonpositive": int((~keep).sum()),
               "method": method, "bits": [float(rows["bits"].min()), float(rows["bits"].max())],
               "tokens_per_param": [float(dn.min()), float(dn.max())]}
    return QuantEvals(rows=rows, all_rows=table.reset_index(drop=True), runs=runs, source=source, method=method,
                      excluded_nonpositive=int((~keep).sum()), summary=summary)
