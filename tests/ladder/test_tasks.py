"""Multiple-choice scoring: the batched scorer against a one-pair-at-a-time reference; task-file checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.ladder.model import GPT, GPTConfig
from scalinglab.ladder.tasks import TaskItem, load_task_file, score_task

ITEMS = [
    TaskItem("The cat sat on the", (" mat.", " moon, far away.", " dog"), 0),
    TaskItem("To be or not to", (" be", " sing a song"), 0),
    TaskItem("", (" alpha", " beta gamma"), 1),
    TaskItem("x" * 300, (" long context", " cut from the left"), 1),
]


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=256, seq_len=64, d_model=32, n_layer=2, n_head=2)).eval()


def reference(model, item: TaskItem, max_len: int):
    """One forward pass per (item, choice), no padding: Σ log p(choice tokens | context)."""
    out = []
    for choice in item.choices:
        cont = encode(choice)
        ctx = encode(item.context) or [0]
        seq = (ctx[-(max_len - len(cont)):] + cont)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([seq]))[0].float(), dim=-1)
        start = len(seq) - len(cont)
        out.append(sum(float(logp[t - 1, seq[t]]) for t in range(start, len(seq))))
    return np.array(out)


def test_batched_scores_match_the_reference(model):
    s = score_task(ITEMS, model, encode, max_len=64, batch_rows=3)  # batches mix items and lengths
    refs = [reference(model, it, 64) for it in ITEMS]
    for got, ref in zip(s.loglik, refs, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    nbytes = [np.array([len(c.encode()) for c in it.choices]) for it in ITEMS]
    assert s.acc == np.mean([np.argmax(r) == it.gold for r, it in zip(refs, ITEMS, strict=True)])
    assert s.acc_norm == np.mean([np.argmax(r / b) == it.gold for r, b, it in zip(refs, nbytes, ITEMS, strict=True)])
    bpb = np.mean([-r[it.gold] / (math.log(2) * b[it.gold]) for r, b, it in zip(refs, nbytes, ITEMS, strict=True)])
    assert s.bpb == pytest.approx(bpb, rel=1e-6)


def test_uniform_model_scores_chance_bits_per_byte():
    # A model whose logits are all equal puts log(1/256) on every byte: exactly 8 bits per byte.
    s = score_task(ITEMS, lambda ids: torch.zeros((*ids.shape, 256)), encode, max_len=64)
    assert s.bpb == pytest.approx(8.0)


def _write(path, objs):
    path.write_text("\n".join(json.dumps(o) for o in objs) + "\n")
    return path


@pytest.mark.parametrize(("obj", "message"), [
    ({"context": "a", "choices": ["x", "y"], "gold": 2}, "field 'gold': 2 is out of range for 2 choices"),
    ({"context": "a", "choices": ["x", "y"], "gold": -1}, "field 'gold': -1 is out of range"),
    ({"context": "a", "choices": ["x"], "gold": 0}, "field 'choices': expected a list of at least 2"),
    ({"context": 3, "choices": ["x", "y"], "gold": 0}, "field 'context': expected a string"),
    ({"context": "a", "choices": ["x", ""], "gold": 0}, "field 'choices\\[1\\]'"),
    ({"context": "a", "choices": ["x", "y"], "gold": "0"}, "field 'gold': expected an integer"),
], ids=["gold-too-large", "gold-negative", "one-choice", "context-not-text", "empty-choice", "gold-not-int"])
def test_bad_task_items_are_named(tmp_path, obj, message):
    p = _write(tmp_path / "t.jsonl", [{"context": "ok", "choices": ["a", "b"], "gold": 1}, obj])
    with pytest.raises(InputError, match=f"line 2, {message}"):
        load_task_file(p)


def test_cli_gold_out_of_range_exits_2(tmp_path, capsys):
    from scalinglab.cli import main

    p = _write(tmp_path / "t.jsonl", [{"context": "a", "choices": ["x", "y"], "gold": 5}])
    with pytest.raises(SystemExit) as exc:
        main(["score-tasks", str(tmp_path), str(p)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "gold': 5 is out of range" in err and len(err.strip().splitlines()) == 1
