"""Run store: registration is idempotent, metrics round-trip, the canonical table reads through runs.io."""

import sqlite3

import pytest

from scalinglab.errors import InputError
from scalinglab.runs.io import read_runs
from scalinglab.runs.store import RunStore, load_run_table


def fill(path):
    with RunStore(path) as store:
        for run, n, status in (("a", 1000, "done"), ("b", 2000, "done"), ("c", 4000, "running")):
            store.register(run, group="g", config={"n": n}, params=n, params_total=n + 10, flops_per_token=6 * n,
                           tokens_target=300, lr=1e-3, batch_size=2, seq_len=5, seed=0, floor=1.5)
            store.update(run, status=status)
            for step, loss in ((10, 3.0), (30, 2.0)):
                store.add_metric(run, step, tokens=step * 10, flops=6.0 * n * step * 10, loss=loss + 1000 / n)
        store.register("a", group="other", config={}, params=1, params_total=1, flops_per_token=1, tokens_target=1)
    return path


def test_register_is_idempotent(tmp_path):
    with RunStore(fill(tmp_path / "runs.db")) as store:
        row = store.get("a")
        assert row["group"] == "g" and row["config"] == {"n": 1000} and row["status"] == "done"


def test_load_run_table_columns_and_final(tmp_path):
    path = fill(tmp_path / "runs.db")
    table = load_run_table(path, final_only=False)
    assert list(table.columns[:5]) == ["run", "params", "tokens", "flops", "loss"]
    assert set(table["run"]) == {"a", "b"}  # the running run is left out
    assert len(table) == 4
    finals = load_run_table(path)  # the default: final evaluations only
    assert finals["step"].tolist() == [30, 30] and finals["is_final"].tolist() == [1, 1]
    everything = load_run_table(path, final_only=False, include_unfinished=True)
    assert set(everything["run"]) == {"a", "b", "c"}
    assert everything.loc[everything["run"] == "c", "is_final"].sum() == 0


def test_read_runs_dispatches_to_store(tmp_path):
    table = read_runs(fill(tmp_path / "runs.db"))
    assert {"run", "params", "tokens", "flops", "loss", "step", "group", "seed"} <= set(table.columns)
    assert table["params"].tolist() == [1000.0, 2000.0]  # final points only
    assert table["step"].tolist() == [30.0, 30.0]


def test_resume_drops_later_metrics(tmp_path):
    path = fill(tmp_path / "runs.db")
    with RunStore(path) as store:
        store.drop_metrics_after("a", 10)
        assert store.metrics("a")["step"].tolist() == [10]
        assert store.integrity_check() == "ok"


def test_not_a_store_is_input_error(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(InputError, match="x.db"):
        load_run_table(bad)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(InputError):
        load_run_table(empty)
    with pytest.raises(InputError, match="no such"):
        load_run_table(tmp_path / "missing.db")


def test_foreign_sqlite_is_refused_and_never_changed(tmp_path):
    from scalinglab.ladder.status import status_lines

    other = tmp_path / "app.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    before = other.read_bytes()
    for open_it in (lambda: RunStore(other), lambda: RunStore(other, readonly=True), lambda: status_lines(other),
                    lambda: load_run_table(other)):
        with pytest.raises(InputError, match=r"app\.db: an SQLite database of another program \(tables: users\)"):
            open_it()
    assert other.read_bytes() == before
    # Our table names with other columns are another program's too.
    lookalike = tmp_path / "lookalike.db"
    db = sqlite3.connect(lookalike)
    db.executescript("CREATE TABLE runs (id INTEGER); CREATE TABLE metrics (x REAL);")
    db.close()
    with pytest.raises(InputError, match="another program"):
        RunStore(lookalike)
    # ladder status never creates a store.
    with pytest.raises(InputError, match="no such run store"):
        status_lines(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("kind", ["directory", "text", "corrupt"])
def test_bad_store_paths_are_one_line_errors(tmp_path, kind):
    path = tmp_path / "runs.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("run,params\na,1\n")
    else:
        path.write_bytes(fill(tmp_path / "good.db").read_bytes()[:100] + b"\x00garbage" * 200)
    for readonly in (False, True):
        with pytest.raises(InputError) as err:
            RunStore(path, readonly=readonly)
        assert "runs.db" in str(err.value) and "\n" not in str(err.value) and "SELECT" not in str(err.value)


def test_text_in_a_numeric_column_is_named(tmp_path):
    path = fill(tmp_path / "runs.db")
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET params = 'lots' WHERE run = 'b'")
    db.execute("UPDATE metrics SET loss = 'low' WHERE run = 'a' AND step = 30")
    db.commit()
    db.close()
    with pytest.raises(InputError, match=r"run 'b' step 10: column 'params' holds 'lots', expected a number"):
        load_run_table(path)
    with RunStore(path) as store:
        with pytest.raises(InputError, match=r"run 'b': column 'params' holds 'lots'"):
            store.runs()
        with pytest.raises(InputError, match=r"run 'b': column 'params' holds 'lots'"):
            store.get("b")
        store.db.execute("UPDATE runs SET params = 2000 WHERE run = 'b'")
        with pytest.raises(InputError, match=r"run 'a' step 30: column 'loss' holds 'low'"):
            store.metrics()
    with pytest.raises(InputError, match=r"run 'a' step 30: column 'loss' holds 'low'"):
        load_run_table(path)


def test_identifiers_come_only_from_the_allow_list(tmp_path):
    from scalinglab.runs.store import _ident

    assert _ident("group", ("group",)) == '"group"'
    assert _ident('a"b', ('a"b',)) == '"a""b"'  # quotes are doubled, never closing the identifier
    with RunStore(fill(tmp_path / "runs.db")) as store:
        for bad in ('status" = \'done\' --', "owner_pid", "created", "params"):
            with pytest.raises(ValueError, match="unknown column"):
                store.update("a", **{bad: 1})
        with pytest.raises(ValueError, match="unknown column"):
            store.register("z", **{"seed) VALUES (1); DROP TABLE runs; --": 1})
        assert store.integrity_check() == "ok" and len(store.runs()) == 3


def test_old_store_without_lease_columns_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    from scalinglab.runs.store import SCHEMA

    db.executescript(SCHEMA.replace(",\n    owner_host TEXT, owner_pid INTEGER, heartbeat REAL, claims INTEGER NOT NULL DEFAULT 0", ""))
    db.execute("INSERT INTO runs (run, config, params, params_total, flops_per_token, tokens_target) "
               "VALUES ('a', '{}', 1, 1, 1, 1)")
    db.commit()
    db.close()
    with RunStore(path, readonly=True) as store:
        assert store.lease_state("a") == "free"
    with RunStore(path) as store:
        assert store.claim("a") == "claimed" and store.get("a")["claims"] == 1


def test_leases_claim_heartbeat_takeover(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    import scalinglab.runs.lease as lease_mod
    import scalinglab.runs.store as store_mod

    path = fill(tmp_path / "runs.db")
    me, other = store_mod.this_owner(), ("elsewhere-host", 4242)
    with RunStore(path) as store:
        store.update("c", status="pending")
        assert store.claim("a") == "done"
        assert store.claim("c", other) == "claimed" and store.lease_state("c") == "held"
        assert store.claim("c", me) == "held"  # a live lease on another host
        assert not store.heartbeat("c", me) and store.heartbeat("c", other)
        # Stale: no heartbeat for LEASE_TIMEOUT_S.
        monkeypatch.setattr(lease_mod, "LEASE_TIMEOUT_S", 0.05)
        time.sleep(0.1)
        assert store.lease_state("c") == "free"
        assert store.claim("c", me) == "claimed"
        assert not store.heartbeat("c", other)  # the old owner learns it lost the lease
        assert not store.release("c", "done", other) and store.get("c")["status"] == "running"
        monkeypatch.setattr(lease_mod, "LEASE_TIMEOUT_S", 30.0)
        # Stale: the owner is a process of this host that no longer exists.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead_owner = (me[0], int(dead.stdout))
        assert store.release("c", "pending", me) and store.claim("c", dead_owner) == "claimed"
        assert store.lease_state("c") == "free" and store.claim("c", me) == "claimed"
        assert store.release("c", "done", me, model_dir="m") and store.get("c")["model_dir"] == "m"
        assert store.get("c")["claims"] == 4 and store.get("c")["owner_pid"] is None


def test_open_retries_a_busy_database_and_refuses_other_errors(tmp_path, monkeypatch):
    """Two processes opening a new store at once can see "database is locked" without SQLite's busy handler
    (seen with two `ladder run` on one new store): opening retries it; other errors stay one-line refusals."""
    real, calls = RunStore._check_schema, []

    def locked_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(self)

    monkeypatch.setattr(RunStore, "_check_schema", locked_once)
    with RunStore(tmp_path / "a.db") as store:
        assert store.runs().empty
    assert len(calls) >= 2

    def broken(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(RunStore, "_check_schema", broken)
    with pytest.raises(InputError, match="not a scalinglab run store"):
        RunStore(tmp_path / "b.db")
