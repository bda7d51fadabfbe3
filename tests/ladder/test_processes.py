"""Processes and untrusted files around `ladder run`: bad --store paths exit 2 with one line, a planted
pickle never runs, workers die with a parent killed by SIGKILL, and two runners on one store train
every job exactly once between them."""

import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scalinglab.cli import main
from scalinglab.runs.store import RunStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


def spec(name, tokens, sizes=({"d_model": 8},), checkpoint_every_s=20.0):
    return {
        "name": name,
        "corpus": {"kind": "synthetic", "markov": {"vocab_size": 8, "order": 1, "branching": 2}},
        "model": {"seq_len": 8, "n_layer": 1, "n_head": 1},
        "sizes": list(sizes),
        "tokens": tokens,
        "train": {"batch_size": 4, "n_evals": 2, "eval_seqs": 8, "checkpoint_every_s": checkpoint_every_s},
    }


def write_spec(tmp_path, raw) -> Path:
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("kind", ["directory", "text", "corrupt", "other-program"])
@pytest.mark.parametrize("command", ["run", "status"])
def test_bad_store_exits_2_with_one_line(tmp_path, capsys, kind, command):
    store = tmp_path / "store.db"
    if kind == "directory":
        store.mkdir()
    elif kind == "text":
        store.write_text("this is a text file\n" * 50)
    elif kind == "corrupt":
        store.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    else:
        db = sqlite3.connect(store)
        db.execute("CREATE TABLE notes (body TEXT)")
        db.commit()
        db.close()
    before = store.read_bytes() if store.is_file() else None
    args = ["ladder", "status", "--store", str(store)]
    if command == "run":
        args = ["ladder", "run", str(write_spec(tmp_path, spec("bad", [256]))), "--store", str(store)]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "store.db" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    if before is not None:
        assert store.read_bytes() == before


def test_planted_pickle_in_a_checkpoint_folder_never_runs(tmp_path, capsys):
    from scalinglab.ladder.spec import parse_spec

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    raw = spec("plant", [256])
    (run,) = (j.run for j in parse_spec(raw).jobs)
    folder = tmp_path / "runs-runs" / run.replace("/", "__")
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(SystemExit) as exc:
        main(["ladder", "run", str(write_spec(tmp_path, raw)), "--store", str(tmp_path / "runs.db"), "--workers", "1"])
    out = capsys.readouterr().out
    assert exc.value.code == 1 and "state.pt: a pickle checkpoint; scalinglab never loads pickles" in out
    assert not (tmp_path / "pwned").exists()
    with RunStore(tmp_path / "runs.db") as store:
        assert store.get(run)["status"] == "failed" and "pickle" in store.get(run)["error"]


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of a session, read from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] not in "ZX":  # fields: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_parent_leaves_no_process(tmp_path):
    # Two workers on long jobs: the parent is killed while both train.
    raw = spec("orphans", [200_000], sizes=[{"d_model": 8}, {"d_model": 16}], checkpoint_every_s=0.2)
    store = tmp_path / "runs.db"
    cmd = [sys.executable, "-m", "scalinglab", "ladder", "run", str(write_spec(tmp_path, raw)), "--store", str(store),
           "--workers", "2", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        states = list((tmp_path / "runs-runs").glob("*/state.safetensors"))
        while time.time() < deadline and proc.poll() is None and len(states) < 2:
            time.sleep(0.1)
            states = list((tmp_path / "runs-runs").glob("*/state.safetensors"))
        assert proc.poll() is None and len(states) == 2, "the workers never started training"
        children = [p for p in _session_processes(proc.pid) if p != proc.pid]
        assert len(children) >= 3  # two workers and the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and _session_processes(proc.pid):
            time.sleep(0.1)
        assert _session_processes(proc.pid) == []
    finally:
        left = _session_processes(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
    with RunStore(store) as s:
        runs = s.runs()
        # Each worker checkpointed and handed its run back: nothing stays `running`.
        assert set(runs["status"]) == {"pending"} and runs["owner_pid"].isna().all()
        assert all(s.lease_state(r) == "free" for r in runs["run"])


def test_two_runners_on_one_store_train_each_job_once(tmp_path):
    raw = spec("shared", [6_000, 8_000, 10_000, 12_000])
    path, store = write_spec(tmp_path, raw), tmp_path / "runs.db"
    cmd = [sys.executable, "-m", "scalinglab", "ladder", "run", str(path), "--store", str(store), "--workers", "1",
           "--threads", "1"]
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with RunStore(store) as s:
        runs = s.runs()
    assert set(runs["status"]) == {"done"} and len(runs) == 4
    assert runs["claims"].tolist() == [1, 1, 1, 1], outs  # every job trained by exactly one worker
    trained = [{line.split()[2] for line in out.splitlines() if " loss " in line} for out in outs]
    assert not trained[0] & trained[1] and trained[0] | trained[1] == set(runs["run"]), outs
    for out, mine in zip(outs, trained, strict=True):  # each runner accounts for all four jobs
        done, skipped, elsewhere = re.search(r"done (\d+), skipped (\d+) \(already done\)(?:, (\d+) by another runner)?",
                                             out).groups()
        assert int(done) == len(mine) and int(done) + int(skipped) + int(elsewhere or 0) == 4, out
