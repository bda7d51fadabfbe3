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
