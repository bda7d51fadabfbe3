"""The run store: one SQLite file (WAL) holding every ladder run, its config, metrics and checkpoints.

    from scalinglab.runs.store import RunStore, load_run_table
    finals = load_run_table("runs.db")                     # one row per finished run: its final evaluation
    curves = load_run_table("runs.db", final_only=False)   # every evaluation point of every finished run
    # scalinglab fit runs.db --law chinchilla  reads the final rows through scalinglab.runs.io.read_runs

:func:`load_run_table` returns the canonical run table, one row per (run, evaluation point) kept:

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
    task_loss:<task>, acc:<task>, acc_norm:<task>   for ladders with ``tasks:`` (ladder/task_suite.py): the
                task scores of that evaluation (NaN where a run did not score the task)

Only runs whose status is ``done`` are returned unless ``include_unfinished=True``. By default only each
run's final evaluation is returned (``final_only=True``): intermediate points of a cosine/WSD run are not
points of a shorter run (their learning rate has not decayed), and fitting them with (N, D) laws biases E
low (on the built-in synthetic ladder: E = 0.83 from all points vs 1.77 from final points, floor 1.75).
``final_only=False`` gives the whole loss curves (for schedule-aware laws), with ``is_final`` marking the end.

Tables: ``runs`` (one row per run: status pending|running|done|failed, JSON config, counts, checkpoint
paths, the step its last resume started from, error, and the lease: owner host and pid, last heartbeat,
number of claims), ``metrics`` (run, step) → tokens, flops, loss, train_loss, lr, elapsed, and
``noise_scale`` (run, step) → b_simple, the smoothed gradient noise scale (:func:`load_noise_scale`), and
``task_metrics`` (run, step, name) → value, one row per task metric of an evaluation (``acc:cloze``, ...),
and ``quant_evals`` (run_id, method, bits, activations, group_size) → the loss of the run's final checkpoint
after post-training quantization (:mod:`scalinglab.runs.quant_evals`).
A resume deletes a run's rows of the first three past the checkpoint it restarts from, so an evaluation is
never lost nor stored twice. Writers open
short transactions with a busy timeout, so several worker processes share one file; WAL keeps finished
results intact when a process is killed at any moment.

Leases. A worker trains a run only after :meth:`RunStore.claim` marks it ``running`` under its own
(host, pid) in one ``BEGIN IMMEDIATE`` transaction; it then renews ``heartbeat`` every few seconds
(:meth:`RunStore.heartbeat`) and hands the run back with :meth:`RunStore.release`. A claim succeeds on a
pending or failed run, or on a ``running`` one whose lease is stale: no heartbeat for ``LEASE_TIMEOUT_S``,
or an owner on this host whose process is gone. So two ``ladder run`` on one store share the work, and
a run whose worker was killed is taken over instead of staying ``running`` forever.

Untrusted files. The store refuses, with one line, a path that is a directory, a file that is not SQLite,
and an SQLite database that is not a scalinglab store (other tables, or our tables with other columns):
it never adds tables to another program's database. SQL identifiers come only from the fixed column
lists below; every value is a bound parameter. Values read back are type-checked (text in a numeric
column is named by run and column).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pandas as pd

from scalinglab.errors import InputError
from scalinglab.runs.lease import HEARTBEAT_S, LEASE_TIMEOUT_S, lease_live, this_owner

__all__ = ["RunStore", "load_run_table", "load_noise_scale", "STATUSES", "LEASE_TIMEOUT_S", "HEARTBEAT_S", "this_owner"]

STATUSES = ("pending", "running", "done", "failed")
BUSY_TIMEOUT_MS = 60_000  # workers wait this long for another writer's transaction
APPLICATION_ID = 0x53434C42  # "SCLB" in the SQLite header: marks a file as a scalinglab store

RUN_COLUMNS = ("run", "group", "status", "config", "params", "params_total", "flops_per_token", "tokens_target",
               "lr", "batch_size", "seq_len", "seed", "floor", "checkpoint", "model_dir", "resumed_step", "error",
               "created", "updated")
LEASE_COLUMNS = ("owner_host", "owner_pid", "heartbeat", "claims")  # added to stores written before leases
METRIC_COLUMNS = ("run", "step", "tokens", "flops", "loss", "train_loss", "lr", "elapsed")
RUN_FIELDS = ("group", "config", "params", "params_total", "flops_per_token", "tokens_target", "lr", "batch_size",
              "seq_len", "seed", "floor")  # what register() accepts
UPDATABLE = ("status", "checkpoint", "model_dir", "resumed_step", "error")  # what update() accepts
NUMERIC_RUN = ("params", "params_total", "flops_per_token", "tokens_target", "lr", "batch_size", "seq_len", "seed",
               "floor", "resumed_step", "owner_pid", "heartbeat", "claims")
NUMERIC_METRIC = ("step", "tokens", "flops", "loss", "train_loss", "lr", "elapsed")

SCHEMA = """
CREATE TABLE runs (
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
    created REAL, updated REAL,
    owner_host TEXT, owner_pid INTEGER, heartbeat REAL, claims INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE metrics (
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

"""
NOISE_DDL = """
CREATE TABLE IF NOT EXISTS noise_scale (
    run TEXT NOT NULL REFERENCES runs(run),
    step INTEGER NOT NULL,
    b_simple REAL NOT NULL,
    PRIMARY KEY (run, step)
);
"""
NOISE_COLUMNS = ("run", "step", "b_simple")
# Task metrics of an evaluation (ladder/task_suite.py): one row per (run, step, name), e.g. name acc:cloze.
# load_run_table turns each name into a column.
TASK_DDL = """
CREATE TABLE IF NOT EXISTS task_metrics (
    run TEXT NOT NULL REFERENCES runs(run),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run, step, name)
);
"""
TASK_COLUMNS = ("run", "step", "name", "value")
TASK_METRIC_RE = r"(task_loss|acc|acc_norm):[A-Za-z0-9_.-]+"
QUANT_DDL = """
CREATE TABLE IF NOT EXISTS quant_evals (
    run_id TEXT NOT NULL REFERENCES runs(run),
    method TEXT NOT NULL,
    bits INTEGER NOT NULL,
    activations TEXT NOT NULL,
    group_size INTEGER NOT NULL,
    config TEXT NOT NULL,
    loss REAL NOT NULL,
    loss_float REAL NOT NULL,
    weight_bytes INTEGER NOT NULL,
    created REAL,
    PRIMARY KEY (run_id, method, bits, activations, group_size)
);
"""
QUANT_COLUMNS = ("run_id", "method", "bits", "activations", "group_size", "config", "loss", "loss_float",
                 "weight_bytes", "created")
OUR_TABLES = ("runs", "metrics", "noise_scale", "task_metrics", "quant_evals")
LEASE_DDL = {"owner_host": "TEXT", "owner_pid": "INTEGER", "heartbeat": "REAL", "claims": "INTEGER NOT NULL DEFAULT 0"}


def _ident(name: str, allowed: tuple[str, ...]) -> str:
    """A quoted SQL identifier, only for names in a fixed allow-list (quotes doubled, as SQL requires)."""
    if name not in allowed:
        raise ValueError(f"unknown column {name!r}; expected one of {', '.join(allowed)}")
    return '"' + name.replace('"', '""') + '"'


class RunStore:
    """A connection to the store; cheap to open, one per process (and one per thread that writes).

    ``readonly=True`` opens an existing store without writing to it (``ladder status``): a missing file or an
    SQLite file without scalinglab's tables is an :class:`InputError`, never created or changed.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, expected a run store file (SQLite)")
        if readonly and not self.path.is_file():
            raise InputError(f"{self.path}: no such run store")
        try:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"{self.path.resolve().as_uri()}?mode={'ro' if readonly else 'rwc'}"
            self.db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"{self.path}: cannot open as a run store ({exc})") from None
        try:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise InputError(f"{self.path}: not a scalinglab run store ({exc})") from None
        except BaseException:
            self.db.close()
            raise

    def _open_schema(self) -> None:
        """Check (and for writers create or upgrade) the schema and switch to WAL. Two processes opening a
        new store at once can meet SQLITE_BUSY here without the busy handler being called (SQLite returns
        it at once where waiting could deadlock, e.g. while the other switches the journal mode): such a
        "database is locked" is retried with backoff for up to BUSY_TIMEOUT_MS, not reported as a bad file."""
        deadline, wait = time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.01
        while True:
            try:
                self._lease_columns = self._check_schema()
                if not self.readonly:
                    self.db.execute("PRAGMA journal_mode=WAL")
                    self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
                    self._init_schema()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(wait)
                wait = min(2 * wait, 0.5)

    def _check_schema(self) -> bool:
        """Refuse another program's database; returns whether the lease columns exist."""
        app_id = self.db.execute("PRAGMA application_id").fetchone()[0]
        names = [n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
        # Column lists only of our own two table names (fixed identifiers), whoever made the file.
        tables = {n: [c[1] for c in self.db.execute(f"PRAGMA table_info({n})")] if n in OUR_TABLES else []
                  for n in names}
        if not tables and app_id in (0, APPLICATION_ID):
            if self.readonly:
                raise InputError(f"{self.path}: an empty SQLite database, not a scalinglab run store")
            return True  # a new store: _init_schema creates everything
        # runs and metrics always; noise_scale and quant_evals from the versions that record them (added to older
        # stores on open).
        other = app_id not in (0, APPLICATION_ID) or not {"runs", "metrics"} <= set(tables) <= set(OUR_TABLES)
        if not other:
            run_cols, metric_cols = set(tables["runs"]), set(tables["metrics"])
            other = (run_cols - set(LEASE_COLUMNS) != set(RUN_COLUMNS) or metric_cols != set(METRIC_COLUMNS)
                     or set(tables.get("noise_scale", NOISE_COLUMNS)) != set(NOISE_COLUMNS)
                     or set(tables.get("task_metrics", TASK_COLUMNS)) != set(TASK_COLUMNS)
                     or set(tables.get("quant_evals", QUANT_COLUMNS)) != set(QUANT_COLUMNS))
        if other:
            names = ", ".join(sorted(tables)) or "none"
            raise InputError(f"{self.path}: an SQLite database of another program (tables: {names}), not a scalinglab "
                             "run store; refusing to use or change it")
        return set(LEASE_COLUMNS) <= set(tables["runs"])

    def _init_schema(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._check_schema()  # again under the write lock: another process may have created it meanwhile
            names = {n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "runs" not in names:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            else:
                have = {c[1] for c in self.db.execute("PRAGMA table_info(runs)")}
                for col in LEASE_COLUMNS:
                    if col not in have:
                        self.db.execute(f"ALTER TABLE runs ADD COLUMN {_ident(col, LEASE_COLUMNS)} {LEASE_DDL[col]}")
            self.db.execute(NOISE_DDL)  # stores written before the noise scale was recorded gain it
            self.db.execute(TASK_DDL)  # and before task metrics were
            self.db.execute(QUANT_DDL)  # and those written before quantized evaluations gain their table
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID:d}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._lease_columns = True

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args=()) -> int:
        """Run one statement in its own write transaction; returns the number of rows changed."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            n = self.db.execute(sql, args).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return n

    # ------------------------------------------------------------------------------------------ runs
    def register(self, run: str, **fields) -> None:
        """Add a run as pending (no-op when it exists: a re-run keeps finished results)."""
        fields = {k: (json.dumps(v, sort_keys=True) if k == "config" else v) for k, v in fields.items()}
        cols = ["run", *fields, "created", "updated"]
        names = ", ".join(_ident(c, ("run", *RUN_FIELDS, "created", "updated")) for c in cols)
        now = time.time()
        self._write(f"INSERT OR IGNORE INTO runs ({names}) VALUES ({', '.join('?' * len(cols))})",
                    (run, *fields.values(), now, now))

    def update(self, run: str, **fields) -> None:
        """Set fields of a run outside a lease (status, checkpoint, model_dir, resumed_step, error)."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status {fields['status']!r} not in {STATUSES}")
        sets = "".join(f"{_ident(k, UPDATABLE)} = ?, " for k in fields)
        self._write(f"UPDATE runs SET {sets}updated = ? WHERE run = ?", (*fields.values(), time.time(), run))

    def get(self, run: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run = ?", (run,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([c[0] for c in cur.description], row, strict=True))
        for col in NUMERIC_RUN:
            if col in out:
                _number(out[col], f"{self.path}: run {run!r}: column '{col}'")
        try:
            out["config"] = json.loads(out["config"])
        except (TypeError, json.JSONDecodeError):
            raise InputError(f"{self.path}: run {run!r}: column 'config' is not valid JSON") from None
        return out

    def runs(self) -> pd.DataFrame:
        frame = pd.read_sql_query("SELECT * FROM runs ORDER BY created, run", self.db)
        _check_frame(frame, NUMERIC_RUN, self.path)
        bad = frame.loc[~frame["status"].isin(STATUSES), "status"]
        if len(bad):
            raise InputError(f"{self.path}: run {frame.loc[bad.index[0], 'run']!r}: status {bad.iloc[0]!r}, "
                             f"expected one of {', '.join(STATUSES)}")
        return frame

    # ------------------------------------------------------------------------------------------ leases
    def claim(self, run: str, owner: tuple[str, int] | None = None) -> str:
        """Take the run's lease for ``owner`` (default: this process) atomically.

        Returns ``"claimed"`` (now ``running`` under ``owner``; ``claims`` counts it), ``"done"`` (nothing to
        do) or ``"held"`` (another owner's lease is live).
        """
        host, pid = owner or this_owner()
        self.db.execute("BEGIN IMMEDIATE")  # the read and the write below are one atomic step
        try:
            row = self.db.execute("SELECT status, owner_host, owner_pid, heartbeat FROM runs WHERE run = ?",
                                  (run,)).fetchone()
            if row is None:
                raise ValueError(f"run {run!r} is not registered")
            status, o_host, o_pid, beat = row
            if status == "done":
                outcome = "done"
            elif status == "running" and (o_host, o_pid) != (host, pid) and lease_live(o_host, o_pid, beat):
                outcome = "held"
            else:
                now = time.time()
                self.db.execute("UPDATE runs SET status = 'running', owner_host = ?, owner_pid = ?, heartbeat = ?, "
                                "claims = claims + 1, error = NULL, updated = ? WHERE run = ?",
                                (host, pid, now, now, run))
                outcome = "claimed"
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return outcome

    def heartbeat(self, run: str, owner: tuple[str, int] | None = None) -> bool:
        """Renew the lease; False when ``owner`` no longer holds it (taken over after going stale)."""
        host, pid = owner or this_owner()
        return self._write("UPDATE runs SET heartbeat = ? WHERE run = ? AND status = 'running' AND owner_host = ? "
                           "AND owner_pid = ?", (time.time(), run, host, pid)) == 1

    def release(self, run: str, status: str, owner: tuple[str, int] | None = None, **fields) -> bool:
        """End the lease with a final ``status`` (done, failed, or pending for a run stopped early) and fields;
        False (and nothing written) when ``owner`` no longer holds it."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"release status {status!r}: expected pending, done or failed")
        host, pid = owner or this_owner()
        sets = "".join(f"{_ident(k, UPDATABLE)} = ?, " for k in fields)
        return self._write(f"UPDATE runs SET {sets}status = ?, owner_host = NULL, owner_pid = NULL, heartbeat = NULL, "
                           "updated = ? WHERE run = ? AND status = 'running' AND owner_host = ? AND owner_pid = ?",
                           (*fields.values(), status, time.time(), run, host, pid)) == 1

    def lease_state(self, run: str) -> str:
        """``"done"``, ``"held"`` (running under a live lease) or ``"free"`` (anyone may claim it)."""
        if not self._lease_columns:
            row = self.db.execute("SELECT status FROM runs WHERE run = ?", (run,)).fetchone()
            return "done" if row and row[0] == "done" else "free"
        row = self.db.execute("SELECT status, owner_host, owner_pid, heartbeat FROM runs WHERE run = ?",
                              (run,)).fetchone()
        if row is None:
            raise ValueError(f"run {run!r} is not registered")
        if row[0] == "done":
            return "done"
        return "held" if row[0] == "running" and lease_live(*row[1:]) else "free"

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
        self._write("DELETE FROM task_metrics WHERE run = ? AND step > ?", (run, step))

    def add_task_metrics(self, run: str, step: int, values: dict[str, float]) -> None:
        """Task metrics of one evaluation (``acc:cloze`` → 0.41, ...), in one transaction; REPLACE like
        :meth:`add_metric`, so a resumed run that re-scores a step keeps one row per metric."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR REPLACE INTO task_metrics VALUES (?, ?, ?, ?)",
                                [(run, step, name, float(v)) for name, v in values.items()])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def task_metrics(self, run: str | None = None) -> pd.DataFrame:
        """Rows (run, step, name, value) of the stored task metrics."""
        sql, args = "SELECT * FROM task_metrics", ()
        if run is not None:
            sql, args = sql + " WHERE run = ?", (run,)
        return pd.read_sql_query(sql + " ORDER BY run, step, name", self.db, params=args)

    def add_noise_scale(self, run: str, step: int, b_simple: float) -> None:
        """The smoothed gradient noise scale B_simple (sequences) at an evaluation (ladder/noise_scale.py)."""
        self._write("INSERT OR REPLACE INTO noise_scale VALUES (?, ?, ?)", (run, step, b_simple))

    def metrics(self, run: str | None = None) -> pd.DataFrame:
        sql, args = "SELECT * FROM metrics", ()
        if run is not None:
            sql, args = sql + " WHERE run = ?", (run,)
        frame = pd.read_sql_query(sql + " ORDER BY run, step", self.db, params=args)
        _check_frame(frame, NUMERIC_METRIC, self.path)
        return frame

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _number(value, where: str) -> None:
    """InputError unless ``value`` is NULL or a finite-or-NaN number (SQLite keeps text in numeric columns)."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return
    if isinstance(value, float) and math.isnan(value):
        return
    raise InputError(f"{where} holds {value!r}, expected a number")


def _check_frame(frame: pd.DataFrame, columns, path: Path) -> None:
    for col in columns:
        if col not in frame.columns or frame[col].dtype.kind in "iufb":
            continue
        for i, value in frame[col].items():
            where = f"{path}: run {frame.loc[i, 'run']!r}"
            if "step" in frame.columns and col != "step":
                step = frame.loc[i, "step"]
                where += f" step {step.item() if hasattr(step, 'item') else step!r}"
            _number(value, f"{where}: column '{col}'")


FINAL_SQL = """
SELECT m.run, r.params, m.tokens, m.flops, m.loss, m.step, r.lr, r.batch_size, r.seq_len, r."group" AS "group",
       r.seed, r.params_total, r.floor, r.status,
       (r.status = 'done' AND m.step = (SELECT MAX(step) FROM metrics WHERE run = m.run)) AS is_final
FROM metrics m JOIN runs r ON r.run = m.run ORDER BY r.params, r.tokens_target, m.run, m.step
"""


def _join_tasks(frame: pd.DataFrame, tasks: pd.DataFrame, path: Path) -> pd.DataFrame:
    """One column per task metric name (``acc:cloze``, ...), joined on (run, step); NaN where not scored."""
    bad = tasks.loc[~tasks["name"].astype(str).str.fullmatch(TASK_METRIC_RE), "name"]
    if len(bad):
        i = bad.index[0]
        raise InputError(f"{path}: run {tasks.loc[i, 'run']!r} step {tasks.loc[i, 'step']}: task metric name "
                         f"{bad.iloc[0]!r}, expected kind:task with kind task_loss, acc or acc_norm")
    _check_frame(tasks, ("step", "value"), path)
    wide = tasks.pivot_table(index=["run", "step"], columns="name", values="value", aggfunc="last")
    wide.columns = [str(c) for c in wide.columns]
    return frame.merge(wide.reset_index(), on=["run", "step"], how="left")


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
    with RunStore(path, readonly=True) as store:
        try:
            cur = store.db.execute(FINAL_SQL)
            frame = pd.DataFrame(cur.fetchall(), columns=[c[0] for c in cur.description])
            has_tasks = store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                         "AND name = 'task_metrics'").fetchone()
            tasks = store.task_metrics() if has_tasks else None
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise InputError(f"{path}: cannot read the run store ({exc})") from None
    if tasks is not None and len(tasks):
        frame = _join_tasks(frame, tasks, path)
    _check_frame(frame, ("params", "tokens", "flops", "loss", "step", "lr", "batch_size", "seq_len", "seed",
                         "params_total", "floor"), path)
    if not include_unfinished:
        frame = frame[frame["status"] == "done"]
    if final_only:
        frame = frame[frame["is_final"] == 1]
    frame = frame.drop(columns="status").reset_index(drop=True)
    frame["floor"] = frame["floor"].astype(float)
    return frame
