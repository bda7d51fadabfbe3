"""Ladders measure tasks: spec `tasks:` validation, scores stored as metric columns, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.cli_run import run

from scalinglab.errors import InputError
from scalinglab.ladder.builtin_tasks import cloze_block_items
from scalinglab.ladder.spec import load_spec, parse_spec
from scalinglab.ladder.task_suite import TaskSpec, TaskSuite, metric_names, parse_tasks
from scalinglab.runs.store import RunStore, load_run_table

SYNTH = {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 4}}


def tiny_spec(tasks, n_evals: int = 3) -> dict:
    return {"name": "tk", "corpus": SYNTH, "model": {"seq_len": 16},
            "sizes": [{"d_model": 8, "n_layer": 1, "n_head": 1}], "tokens": [6000],
            "train": {"lr": 1e-2, "batch_size": 8, "n_evals": n_evals, "eval_seqs": 8, "checkpoint_every_s": 1e9, "precision": "fp32", "device": "cpu", "compile": "off"},
            "tasks": tasks}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_spec_tasks_builtin_file_and_options(tmp_path):
    _write(tmp_path / "mine.jsonl", [{"context": "t1", "choices": [" t2", " t3"], "gold": 0}])
    spec_path = tmp_path / "s.json"
    spec_path.write_text(json.dumps(tiny_spec([{"name": "next_token", "items": 9}, "mine.jsonl"])))
    tasks = load_spec(spec_path).jobs[0].tasks
    assert [t.name for t in tasks] == ["next_token", "mine"] and tasks[0].items == 9
    assert tasks[1].path == str(tmp_path / "mine.jsonl")  # relative to the spec file
    job = load_spec(spec_path).jobs[0]
    assert type(job).from_dict(job.to_dict()) == job  # travels to workers and into the store's config


@pytest.mark.parametrize(("tasks", "message"), [
    ("cloze", "tasks: expected a list"),
    (["hellaswag"], "'hellaswag' is neither a built-in task"),
    (["cloze"], "built-in task 'cloze' needs a shakespeare or text corpus, not 'synthetic'"),
    (["next_token", "next_token"], "a second task named 'next_token'"),
    ([{"name": "next_token", "choices": 1}], "choices: 1, expected an integer >= 2"),
    ([{"name": "next_token", "shots": 5}], "unknown field 'shots'"),
    (["missing.jsonl"], "missing.jsonl: no such task file"),
], ids=["not-a-list", "unknown-builtin", "wrong-corpus", "duplicate", "one-choice", "unknown-option", "missing-file"])
def test_bad_tasks_are_one_line(tasks, message):
    with pytest.raises(InputError, match=message) as exc:
        parse_spec(tiny_spec(tasks), "s.yaml")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("s.yaml: tasks")


def test_ladder_run_refuses_gold_out_of_range_before_training(tmp_path, capsys):
    _write(tmp_path / "bad.jsonl", [{"context": "t1", "choices": [" t2", " t3"], "gold": 0},
                                    {"context": "t1", "choices": [" t2", " t3"], "gold": 2}])
    spec_path = tmp_path / "s.json"
    spec_path.write_text(json.dumps(tiny_spec(["bad.jsonl"])))
    code, _, err = run(["ladder", "run", str(spec_path), "--store", str(tmp_path / "r.db")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "bad.jsonl: line 2, field 'gold': 2 is out of range for 2 choices" in err
    assert not (tmp_path / "r.db").exists() or load_run_table(tmp_path / "r.db").empty


def test_cloze_items_stay_inside_one_block():
    docs = ["\n".join(f"doc{d} line {i}" for i in range(6)) for d in range(5)]
    items = cloze_block_items(docs, 40, context_lines=2, n_choices=3, rng=np.random.default_rng(0))
    assert len(items) == 20  # 5 documents × 4 starts whose next line is in the same document
    for it in items:
        ctx = it.context.splitlines()
        doc, last = ctx[-1].split()[0], int(ctx[-1].split()[-1])
        assert ctx[0].split()[0] == doc and it.choices[it.gold] == f"\n{doc} line {last + 1}"
        assert len(set(it.choices)) == 3


def test_cloze_on_heldout_text_of_a_real_corpus(tmp_path):
    from scalinglab.ladder.data import CorpusConfig, load_corpus

    words = [f"w{i}" for i in range(50)]
    rng = np.random.default_rng(0)
    text = "\n".join(" ".join(rng.choice(words, 6)) for _ in range(3000))
    (tmp_path / "c.txt").write_text(text)
    corpus = load_corpus(CorpusConfig(kind="text", paths=(str(tmp_path / "c.txt"),), tokenizer="byte"))
    suite = TaskSuite(parse_tasks([{"name": "cloze", "items": 30}], "text", "s"), corpus)
    items = suite.items["cloze"]
    assert len(items) == 30
    for it in items:  # every line of an item is a whole line of the corpus
        for line in [*it.context.splitlines(), it.choices[it.gold].strip()]:
            assert f"\n{line}\n" in f"\n{text}\n"


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and the ladder's workers set the thread count globally)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(before)


def _store_rows(path):
    with RunStore(path) as store:
        return store.task_metrics()


def test_ladder_stores_task_columns_at_every_evaluation(tmp_path, one_thread):
    from scalinglab.ladder.executors import run_ladder
    from scalinglab.runs.io import read_runs

    spec = parse_spec(tiny_spec([{"name": "next_token", "items": 40}]), "s")
    summary = run_ladder(spec, tmp_path / "r.db", workers=1, threads=one_thread)
    assert not summary.failed
    curves = read_runs(tmp_path / "r.db", all_evals=True)
    assert len(curves) == 3 and curves["is_final"].sum() == 1
    for col in metric_names("next_token"):
        assert curves[col].notna().all()
    assert ((curves["acc:next_token"] >= 0) & (curves["acc:next_token"] <= 1)).all()
    assert (curves["task_loss:next_token"] > 0).all()
    finals = read_runs(tmp_path / "r.db")  # what `fit --target acc:next_token` reads
    assert len(finals) == 1 and "acc:next_token" in finals.columns


def test_resumed_run_neither_loses_nor_duplicates_task_rows(tmp_path, one_thread):
    """Stop mid-run (after the first evaluation), plant a row a killed worker might have left past the
    checkpoint, resume: the rows equal those of an uninterrupted run (training is deterministic)."""
    from scalinglab.ladder.executors import register_jobs, run_job
    from scalinglab.ladder.train import train

    spec = parse_spec(tiny_spec([{"name": "next_token", "items": 30}], n_evals=4), "s")
    job = spec.jobs[0]

    ref = tmp_path / "ref.db"
    with RunStore(ref) as store:
        register_jobs([job], store)
    assert run_job(job.to_dict(), str(ref), str(tmp_path / "ref-runs"), one_thread)["status"] == "done"

    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.executors import _record, _workdir, task_hook

    path, root = tmp_path / "r.db", tmp_path / "runs"
    corpus = load_corpus(job.corpus)
    with RunStore(path) as store:
        register_jobs([job], store)
        res = train(job.model, job.train, corpus, workdir=_workdir(root, job.run), stop_after=10,
                    on_eval=lambda ev: _record(store, job.run, ev), eval_hook=task_hook(job, store, corpus))
        assert res.steps == 10 and len(res.evals) >= 1
        store.add_task_metrics(job.run, 11, {"acc:next_token": 0.99})  # recorded after the checkpoint, then killed
    assert run_job(job.to_dict(), str(path), str(root), one_thread)["status"] == "done"

    got, want = _store_rows(path), _store_rows(ref)
    assert len(want) == 3 * 4 and not got.duplicated(["run", "step", "name"]).any()
    assert got[["step", "name"]].values.tolist() == want[["step", "name"]].values.tolist()
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-6)


def test_store_refuses_a_bad_task_metric_name(tmp_path):
    from scalinglab.ladder.executors import register_jobs

    job = parse_spec(tiny_spec(["next_token"]), "s").jobs[0]
    with RunStore(tmp_path / "r.db") as store:
        register_jobs([job], store)
        store.add_metric(job.run, 1, 100, 1e6, 2.0)
        store.update(job.run, status="done")
        store.add_task_metrics(job.run, 1, {"acc;drop:x": 0.5})
    with pytest.raises(InputError, match="task metric name 'acc;drop:x', expected kind:task"):
        load_run_table(tmp_path / "r.db")


def test_task_spec_defaults():
    assert TaskSpec("cloze").to_dict() == {"name": "cloze", "path": "", "items": 200, "choices": 4}
