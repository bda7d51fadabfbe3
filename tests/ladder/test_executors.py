"""Executors: the local pool records every run and skips finished ones; Ray runs jobs against a local
instance; a ladder killed with SIGKILL mid-training resumes without losing finished results."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scalinglab.ladder.executors import run_ladder
from scalinglab.ladder.spec import parse_spec
from scalinglab.runs.store import RunStore, load_run_table

SRC = str(Path(__file__).resolve().parents[2] / "src")


def spec_dict(tokens, name="t", checkpoint_every_s=20.0):
    return {
        "name": name,
        "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
        "model": {"seq_len": 16, "n_head": 1, "n_layer": 1},
        "sizes": [{"d_model": 8}, {"d_model": 16}],
        "tokens": tokens,
        "train": {"batch_size": 8, "n_evals": 3, "eval_seqs": 16, "lr": 1e-2, "checkpoint_every_s": checkpoint_every_s},
    }


def test_local_pool_runs_and_skips(tmp_path):
    spec = parse_spec(spec_dict([4096, 8192]))
    store = tmp_path / "runs.db"
    first = run_ladder(spec, store, workers=2, threads=1)
    assert sorted(first.done) == sorted(j.run for j in spec.jobs) and not first.failed
    table = load_run_table(store, final_only=True)
    assert len(table) == 4 and (table["loss"] < 2.9).all()
    with RunStore(store) as s:
        assert all(os.path.isfile(Path(p) / "model.safetensors") for p in s.runs()["model_dir"])
    again = run_ladder(spec, store, workers=2, threads=1)
    assert again.done == [] and len(again.skipped) == 4


@pytest.mark.slow
def test_ray_executor(tmp_path):
    ray = pytest.importorskip("ray")
    # Workers import this checkout's package (the installed one may be another checkout).
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": SRC}})
    try:
        spec = parse_spec(spec_dict([2048]))
        summary = run_ladder(spec, tmp_path / "runs.db", executor="ray", threads=1)
    finally:
        ray.shutdown()
    assert sorted(summary.done) == sorted(j.run for j in spec.jobs) and not summary.failed
    assert len(load_run_table(tmp_path / "runs.db", final_only=True)) == 2


@pytest.mark.slow
def test_kill_9_mid_training_then_resume(tmp_path):
    spec_path, store = tmp_path / "crash.yaml", tmp_path / "runs.db"
    # Jobs run largest first: A (longest) finishes, B is killed after a checkpoint (every 0.3 s), C is pending.
    raw = {**spec_dict([4096, 8192 * 20, 8192 * 40], name="crash", checkpoint_every_s=0.3), "sizes": [{"d_model": 8}]}
    spec_path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "scalinglab", "ladder", "run", str(spec_path), "--store", str(store),
           "--workers", "1", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    small, long_run, first = (j.run for j in parse_spec(raw).jobs)
    long_state = tmp_path / "runs-runs" / long_run.replace("/", "__") / "state.safetensors"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if store.is_file() and long_state.is_file():
                with RunStore(store) as s:
                    runs = s.runs().set_index("run")["status"]
                if runs[first] == "done" and runs[long_run] == "running":
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with RunStore(store) as s:
        before = s.metrics()
        assert s.integrity_check() == "ok"
        assert s.get(long_run)["status"] == "running" and s.get(small)["status"] == "pending"
    finished_before = before[before["run"] == first]

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "skipped 1" in res.stdout
    with RunStore(store) as s:
        assert s.integrity_check() == "ok"
        row = s.get(long_run)
        assert row["status"] == "done" and row["resumed_step"] > 0
        assert s.get(small)["status"] == "done"
        after = s.metrics()
    # Finished runs are intact, row for row.
    kept = after[after["run"] == first].reset_index(drop=True)
    assert kept.equals(finished_before.reset_index(drop=True))
    # The resumed run has its full set of evaluations, each step once.
    steps = after.loc[after["run"] == long_run, "step"].tolist()
    assert steps == sorted(set(steps)) and steps[-1] == 8192 * 20 // (8 * 16)
