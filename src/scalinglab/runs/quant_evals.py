"""The store's quantized evaluations: one row per (run, precision), written and read back.

    from scalinglab.runs.quant_evals import read_quant_evals
    table = read_quant_evals("runs.db")     # run_id, params, tokens, method, bits, activations, group_size,
                                            # loss, loss_float, weight_bytes

A ladder whose spec has ``quantize:`` quantizes each finished run's final checkpoint with every listed
config and evaluates it on the held-out tokens of the run's final evaluation
(:mod:`scalinglab.ladder.autoquant`). Each evaluation is one row of the ``quant_evals`` table, keyed by
(run_id, method, bits, activations, group_size) and written in its own transaction, so a quantization step
killed at any moment keeps every row it finished and the next ``ladder run`` computes only the missing ones.

Columns of :func:`read_quant_evals` (finished runs only, sorted by N, D, method, bits):

    run_id        the run's id in the store
    params        N, non-embedding parameters, as in :func:`scalinglab.runs.store.load_run_table` (the fits' N)
    tokens        D, tokens the run trained on (its final evaluation's tokens, as in the run table)
    method        rtn | smoothquant | outliertune | llm.int8
    bits          weight bits (8, 6, 4)
    activations   "none" (weight-only: activations stay in floating point) or their bits ("8", "6", "4")
    group_size    input channels per weight scale; 0 = one scale per output channel (the whole row)
    loss          validation loss (nats/token) of the quantized model
    loss_float    validation loss of the float model on the same tokens, computed the same way (fp32)
    weight_bytes  bytes of the quantized model's weights and buffers (embeddings stay in float)
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pandas as pd

from scalinglab.errors import InputError

__all__ = ["COLUMNS", "add_quant_eval", "quant_keys", "count_quant_evals", "read_quant_evals"]

COLUMNS = ("run_id", "params", "tokens", "method", "bits", "activations", "group_size", "loss", "loss_float",
           "weight_bytes")
NUMERIC = ("params", "tokens", "bits", "group_size", "loss", "loss_float", "weight_bytes")

READ_SQL = """
SELECT q.run_id, r.params,
       (SELECT m.tokens FROM metrics m WHERE m.run = q.run_id ORDER BY m.step DESC LIMIT 1) AS tokens,
       q.method, q.bits, q.activations, q.group_size, q.loss, q.loss_float, q.weight_bytes
FROM quant_evals q JOIN runs r ON r.run = q.run_id
WHERE r.status = 'done'
ORDER BY r.params, r.tokens_target, q.run_id, q.method, q.bits DESC, q.activations, q.group_size
"""


def add_quant_eval(store, run: str, key: tuple[str, int, str, int], config: dict, loss: float, loss_float: float,
                   weight_bytes: int) -> bool:
    """Record one quantized evaluation in its own transaction; False (nothing written) when the row exists.

    ``key`` is (method, bits, activations, group_size). The first row stored wins: a second runner that
    computed the same evaluation (deterministic, so equal) does not overwrite it.
    """
    method, bits, activations, group_size = key
    return store._write(
        "INSERT OR IGNORE INTO quant_evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run, method, int(bits), str(activations), int(group_size), json.dumps(config, sort_keys=True),
         float(loss), float(loss_float), int(weight_bytes), time.time())) == 1


def quant_keys(store, run: str) -> set[tuple[str, int, str, int]]:
    """The (method, bits, activations, group_size) keys already stored for ``run``."""
    rows = store.db.execute("SELECT method, bits, activations, group_size FROM quant_evals WHERE run_id = ?",
                            (run,)).fetchall()
    return {(m, b, a, g) for m, b, a, g in rows}


def _has_table(db) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quant_evals'").fetchone() is not None


def count_quant_evals(store) -> tuple[int, int]:
    """(rows, runs with at least one row) of an open store; (0, 0) for a store without the table."""
    if not _has_table(store.db):
        return 0, 0
    return tuple(store.db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM quant_evals").fetchone())


def read_quant_evals(store_path: str | Path) -> pd.DataFrame:
    """Every quantized evaluation of the store's finished runs, one row per (run, precision) (columns above)."""
    from scalinglab.runs.store import RunStore

    path = Path(store_path)
    with RunStore(path, readonly=True) as store:
        if not _has_table(store.db):
            return pd.DataFrame({c: pd.Series(dtype="object" if c in ("run_id", "method", "activations") else "float")
                                 for c in COLUMNS})
        try:
            cur = store.db.execute(READ_SQL)
            frame = pd.DataFrame(cur.fetchall(), columns=[c[0] for c in cur.description])
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: cannot read the run store's quant_evals ({exc})") from None
    for col in NUMERIC:  # SQLite keeps text in numeric columns: name the run and column
        for i, value in frame[col].items():
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise InputError(f"{path}: quant_evals run {frame.loc[i, 'run_id']!r}: column '{col}' holds {value!r}, "
                                 "expected a finite number")
    for col in ("params", "tokens", "bits", "group_size", "weight_bytes"):
        frame[col] = frame[col].astype("int64")
    for col in ("loss", "loss_float"):
        frame[col] = frame[col].astype(float)
    frame["activations"] = frame["activations"].astype(str)
    return frame[list(COLUMNS)]
