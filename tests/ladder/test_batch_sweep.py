"""Batch-size sweeps in ladder specs, and the gradient noise scale recorded during training and in the store."""

import math

import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.hparams import load_sweep
from scalinglab.ladder.data import CorpusConfig, load_corpus
from scalinglab.ladder.executors import run_ladder
from scalinglab.ladder.model import GPTConfig
from scalinglab.ladder.spec import parse_spec, split_batch
from scalinglab.ladder.synthetic import MarkovConfig
from scalinglab.ladder.train import TrainConfig, train
from scalinglab.runs.store import load_noise_scale, load_run_table

BASE = {
    "name": "b",
    "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
    "model": {"seq_len": 16, "n_head": 1, "n_layer": 1},
    "sizes": [{"d_model": 8}],
    "tokens": [4096],
    "train": {"batch_size": 8, "n_evals": 3, "eval_seqs": 16, "lr": 1e-2},
}


@pytest.mark.parametrize(("batch", "cap", "want"), [(64, 8, (8, 8)), (8, 8, (4, 2)), (6, 32, (3, 2)), (7, 32, (1, 7)),
                                                    (1, 8, (1, 1)), (2, 8, (1, 2))],
                         ids=["capped", "halved", "divisor", "prime", "one", "two"])
def test_split_batch(batch, cap, want):
    micro, accum = split_batch(batch, cap)
    assert (micro, accum) == want and micro * accum == batch


def test_spec_sweeps_batch_sizes_as_micro_batches_times_accumulation():
    spec = parse_spec({**BASE, "lrs": [1e-2, 3e-2], "batch_sizes": [4, 16, 32]})
    assert len(spec.jobs) == 2 * 3
    got = {(j.train.lr, j.train.batch_size * j.train.grad_accum) for j in spec.jobs}
    assert got == {(lr, b) for lr in (1e-2, 3e-2) for b in (4, 16, 32)}
    assert all(j.train.grad_accum >= 2 and j.train.batch_size <= 8 for j in spec.jobs)
    assert any(j.run.endswith("/B16/s0") for j in spec.jobs)
    plain = parse_spec({**BASE, "lrs": [1e-2]})
    assert plain.jobs[0].run.endswith("/lr0.01/s0")  # run ids of specs without a batch sweep are unchanged


@pytest.mark.parametrize("values", [[4.5], [0], ["x"], []], ids=["fraction", "zero", "text", "empty"])
def test_bad_batch_sizes_are_input_errors(values):
    with pytest.raises(InputError, match="batch_sizes"):
        parse_spec({**BASE, "batch_sizes": values}, "spec.yaml")


def test_training_with_accumulation_reports_the_noise_scale():
    corpus = load_corpus(CorpusConfig(markov=MarkovConfig(vocab_size=16, order=1, branching=3)))
    model = GPTConfig(vocab_size=16, seq_len=16, d_model=16, n_layer=1, n_head=2)
    cfg = TrainConfig(tokens=16 * 8 * 12, lr=1e-2, batch_size=4, grad_accum=2, n_evals=2, eval_seqs=8)
    res = train(model, cfg, corpus)
    values = [e.noise_scale for e in res.evals]
    assert all(v is not None and math.isfinite(v) and v > 0 for v in values)
    single = train(model, TrainConfig(**{**cfg.to_dict(), "batch_size": 8, "grad_accum": 1, "tokens": 16 * 8 * 2}), corpus)
    assert all(e.noise_scale is None for e in single.evals)


def test_ladder_store_records_batch_steps_tokens_and_noise_scale(tmp_path):
    spec = parse_spec({**BASE, "batch_sizes": [4, 16]})
    store = tmp_path / "runs.db"
    summary = run_ladder(spec, store, workers=1, threads=1)
    assert not summary.failed
    finals = load_run_table(store)
    assert sorted(finals["batch_size"]) == [4, 16]
    for _, row in finals.iterrows():
        assert row["tokens"] == row["step"] * row["batch_size"] * row["seq_len"]
    gns = load_noise_scale(store)
    assert set(gns["run"]) == set(finals["run"]) and (gns["b_simple"] > 0).all()
    assert len(gns) == len(load_run_table(store, final_only=False))  # one value per evaluation
    finals2, curves, noise = load_sweep(store)
    assert len(finals2) == 2 and len(curves) == len(gns) and noise["b_simple"].tolist() == gns["b_simple"].tolist()
