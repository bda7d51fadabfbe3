"""The run store: one SQLite file (WAL) holding every ladder run, its config, metrics and checkpoints.

    from scalinglab.runs.store import RunStore, load_run_table
    finals = load_run_table("runs.db")                     # one row per finished run: its final evaluation
    curves = load_run_table("runs.db", final_only=False)   # every evaluation point of every finished run
    # scalinglab fit runs.db --law chinchilla  reads the final rows through scalinglab.runs.io.read_runs

:func:`load_run_table` returns the canonical run table (DESIGN §3), one row per (run, evaluation point) kept:

    run         run id (e.g. ``demo-synthetic/d64-L2/D1.2e+06/s0``)
    params      N, **non-embedding** parameters (all but token and positional embeddings; the unembedding
                is tied), exactly as :func:`scalinglab.ladder.flops.non_embedding_params`
    tokens      D, training tokens seen when the point was evaluated (steps × batch × accumulation × T)
    flops       C = D × flops_per_token, with 6N + attention + unembedding FLOPs (ladder/flops.py), not 6ND
    loss        validation loss (nats/token) on held-out data
    step, lr (peak learning rate of the run), batch_size (sequences per optimizer step), seq_len, group
    (the ladder's name), seed
    is_final    1 on the run's last evaluation (the end of its schedule), else 0
    params_total, floor (the exact irreducible loss of the synthetic corpus; NaN for text)

Only runs whose status is ``done`` are returned unless ``include_unfinished=True``. By default only each
run's final evaluation is returned (``final_only=True``): intermediate points of a cosine/WSD run are not
points of a shorter run (their learning rate has not decayed), and fitting them with (N, D) laws biases E
low (on the built-in synthetic ladder: E = 0.83 from all points vs 1.77 from final points, floor 1.75).
``final_only=False`` gives the whole loss curves (for schedule-aware laws), with ``is_final`` marking the end.

Tables: ``runs`` (one row per run: status pending|running|done|failed, JSON config, counts, checkpoint
paths, the step its last resume started from, error), ``metrics`` (run, step) → tokens, flops, loss, train_loss, lr, elapsed,
and ``noise_scale`` (run, step) → b_simple, the smoothed gradient noise scale (:func:`load_noise_scale`). Writers open
short transactions with a busy timeout, so several worker processes share one file; WAL keeps finished
results intact when a process is killed at any moment.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pandas as pd

from scalinglab.errors import InputError

__all__ = ["RunStore", "load_run_table", "load_noise_scale", "STATUSES"]

STATUSES = ("pending", "running", "done", "failed")
BUSY_TIMEOUT_MS = 60_000  # workers wait this long for another writer's transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    "group" TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    config TEXT NOT NULL,
    params INTEGER NOT NULL,
    params_total INTEGER NOT NULL,
    flops_per_token REAL NOT NULL,
    tokens_target INTEGER NOT NULL,
    lr REAL, batch_size INTEGER, seq_len INTEGER, seed INTEGER,
    floor REAL,
    checkpoint TEXT,
    model_dir TEXT,
    resumed_step INTEGER,
    error TEXT,
    created REAL, updated REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT NOT NULL REFERENCES runs(run),
    step INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    flops REAL NOT NULL,
    loss REAL NOT NULL,
    train_loss REAL,
    lr REAL,
    elapsed REAL,
    PRIMARY KEY (run, step)
);
CREATE TABLE IF NOT EXISTS noise_scale (
    run TEXT NOT NULL REFERENCES runs(run),
    step INTEGER NOT NULL,
    b_simple REAL NOT NULL,
    PRIMARY KEY (run, step)
);
"""

RUN_FIELDS = ("group", "config", "params", "params_total", "flops_per_token", "tokens_target", "lr", "batch_size",
              "seq_len", "seed", "floor")


class RunStore:
    """A connection to the store; cheap to open, one per process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        with self.db:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args=()) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(sql, args)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------------------------------ runs
    def register(self, run: str, **fields) -> None:
        """Add a run as pending (no-op when it exists: a re-run keeps finished results)."""
        fields = {k: (json.dumps(v, sort_keys=True) if k == "config" else v) for k, v in fields.items()}
        unknown = set(fields) - set(RUN_FIELDS)
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        cols = ["run", *fields, "created", "updated"]
        now = time.time()
        self._write(f"INSERT OR IGNORE INTO runs ({', '.join(map(_q, cols))}) VALUES ({', '.join('?' * len(cols))})",
                    (run, *fields.values(), now, now))

    def update(self, run: str, **fields) -> None:
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status {fields['status']!r} not in {STATUSES}")
        sets = ", ".join(f"{_q(k)} = ?" for k in fields)
        self._write(f"UPDATE runs SET {sets}, updated = ? WHERE run = ?", (*fields.values(), time.time(), run))

    def get(self, run: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run = ?", (run,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([c[0] for c in cur.description], row, strict=True))
        out["config"] = json.loads(out["config"])
        return out

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY created, run", self.db)

    # ------------------------------------------------------------------------------------------ metrics
    def add_metric(self, run: str, step: int, tokens: int, flops: float, loss: float, train_loss: float | None = None,
                   lr: float | None = None, elapsed: float | None = None) -> None:
        # REPLACE: a resumed run re-evaluates the same step to the same value (training is deterministic).
        self._write("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run, step, tokens, flops, loss, train_loss, lr, elapsed))

    def drop_metrics_after(self, run: str, step: int) -> None:
        """Forget evaluations past a resume point (they will be recomputed)."""
        self._write("DELETE FROM metrics WHERE run = ? AND step > ?", (run, step))
        self._write("DELETE FROM noise_scale WHERE run = ? AND step > ?", (run, step))

    def add_noise_scale(self, run: str, step: int, b_simple: float) -> None:
        """The smoothed gradient noise scale B_simple (sequences) at an evaluation (ladder/noise_scale.py)."""
        self._write("INSERT OR REPLACE INTO noise_scale VALUES (?, ?, ?)", (run, step, b_simple))

    def metrics(self, run: str | None = None) -> pd.DataFrame:
        sql, args = "SELECT * FROM metrics", ()
        if run is not None:
            sql, args = sql + " WHERE run = ?", (run,)
        return pd.read_sql_query(sql + " ORDER BY run, step", self.db, params=args)

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _q(name: str) -> str:
    return f'"{name}"'


def load_noise_scale(path: str | Path) -> pd.DataFrame:
    """Every stored B_simple with its run's N, tokens at that step and batch size (sequences per step)."""
    path = Path(path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            has = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'noise_scale'").fetchone()
            if not has:
                return pd.DataFrame(columns=["run", "params", "tokens", "step", "batch_size", "lr", "b_simple"])
            return pd.read_sql_query(
                """SELECT g.run, r.params, m.tokens, g.step, r.batch_size, r.lr, g.b_simple
                   FROM noise_scale g JOIN runs r ON r.run = g.run JOIN metrics m ON m.run = g.run AND m.step = g.step
                   WHERE r.status = 'done' ORDER BY r.params, g.run, g.step""", db)
        finally:
            db.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise InputError(f"{path}: not a scalinglab run store ({exc})") from None


def load_run_table(path: str | Path, final_only: bool = True, include_unfinished: bool = False) -> pd.DataFrame:
    """The canonical run table of a store (see the module docstring for columns and conventions)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such run store")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            frame = pd.read_sql_query(
                """SELECT m.run, r.params, m.tokens, m.flops, m.loss, m.step, r.lr, r.batch_size, r.seq_len,
                          r."group" AS "group", r.seed, r.params_total, r.floor, r.status,
                          (r.status = 'done' AND m.step = (SELECT MAX(step) FROM metrics WHERE run = m.run)) AS is_final
                   FROM metrics m JOIN runs r ON r.run = m.run ORDER BY r.params, r.tokens_target, m.run, m.step""",
                db)
        finally:
            db.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise InputError(f"{path}: not a scalinglab run store ({exc})") from None
    if not include_unfinished:
        frame = frame[frame["status"] == "done"]
    if final_only:
        frame = frame[frame["is_final"] == 1]
    frame = frame.drop(columns="status").reset_index(drop=True)
    frame["floor"] = frame["floor"].astype(float)
    return frame
