"""Corpora: text loading, BPE tokenizer cache, deterministic disjoint train/validation split."""

import json

import numpy as np
import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.ladder.data import CorpusConfig, load_corpus, load_text


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALINGLAB_CACHE", str(tmp_path / "cache"))


def write_corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "doth", "speak", "of", "love", "and", "war", "thou", "art"]
    text = " ".join(rng.choice(words, size=30_000))
    (tmp_path / "a.txt").write_text(text[: len(text) // 2])
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": text[len(text) // 2:][i:i + 500]})
                                                for i in range(0, len(text) // 2, 500)))
    return text


def test_load_text_files_globs_jsonl(tmp_path):
    write_corpus(tmp_path)
    text = load_text(str(tmp_path / "*.txt"), tmp_path / "b.jsonl")
    assert "king" in text and len(text) > 100_000
    with pytest.raises(InputError, match="missing.txt"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"other": 1}\n')
    with pytest.raises(InputError, match="line 2"):
        load_text(tmp_path / "bad.jsonl")


def test_bpe_corpus_split_and_batches(tmp_path):
    write_corpus(tmp_path)
    cfg = CorpusConfig(kind="text", paths=(str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")), vocab_size=300)
    corpus = load_corpus(cfg)
    assert corpus.vocab_size == 300
    n = len(corpus.train_ids) + len(corpus.val_ids)
    assert 0.03 < len(corpus.val_ids) / n < 0.07
    x, y = corpus.train_batch(step=3, batch_size=4, seq_len=16, seed=0)
    x2, _ = corpus.train_batch(step=3, batch_size=4, seq_len=16, seed=0)
    assert torch.equal(x, x2) and torch.equal(x[:, 1:], y[:, :-1])
    assert not torch.equal(x, corpus.train_batch(step=4, batch_size=4, seq_len=16, seed=0)[0])
    # Cached: a second load reads the same ids.
    again = load_corpus(cfg)
    assert np.array_equal(again.train_ids, corpus.train_ids)
    assert len(corpus.val_batches(16, 4, 10)) == 3


def test_synthetic_corpus_batches_and_floor():
    corpus = load_corpus(CorpusConfig())
    x, y = corpus.train_batch(0, 8, 32, seed=1)
    assert x.shape == (8, 32) and torch.equal(x[:, 1:], y[:, :-1])
    assert corpus.floor(32) == pytest.approx(corpus.source.entropy_rate)  # order 1: every target has context
    assert corpus.tokenizer.decode(corpus.tokenizer.encode("t1 t2").ids) == "t1 t2"
