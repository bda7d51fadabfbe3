"""`quantize --method auto`: budget parsing, the choice rule, the decision table, and the search end to end
on a tiny model (resume included)."""

from __future__ import annotations

import pytest

from scalinglab.errors import InputError
from scalinglab.quant.auto import Candidate, choose, format_table, parse_budget


@pytest.mark.parametrize(("text", "value"), [("0.5%", 0.005), ("0.005", 0.005), (" 5% ", 0.05), ("1e-3", 0.001)],
                         ids=["percent", "fraction", "spaces", "exponent"])
def test_parse_budget(text, value):
    assert parse_budget(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "needle"), [("abc", "percentage like 0.5%"), ("-1%", "positive"),
                                              ("0", "positive"), ("nan", "positive"), ("5", "did you mean 5.0%"),
                                              ("150%", "below 100%")],
                         ids=["not-a-number", "negative", "zero", "nan", "bare-5", "over-100pct"])
def test_parse_budget_errors_are_one_line(text, needle):
    with pytest.raises(InputError) as exc:
        parse_budget(text)
    msg = str(exc.value)
    assert "--max-loss-increase" in msg and needle in msg and "\n" not in msg


def _row(key, loss_change, nbytes, tps, status="measured"):
    return {"key": key, "status": status, "loss_change": loss_change, "weight_bytes": nbytes, "tokens_per_s": tps}


def test_choose_smallest_within_budget_then_faster():
    rows = [_row("a", 0.001, 100, 10.0), _row("b", 0.02, 50, 99.0),  # b is smaller but over budget
            _row("c", 0.004, 100, 20.0), _row("d", 0.009, 200, 50.0), _row("e", 0.0, 10, 1.0, "skipped")]
    assert choose(rows, 0.01)["key"] == "c"  # a and c tie on bytes: c is faster
    assert choose(rows, 0.05)["key"] == "b"
    assert choose(rows, 0.0005) is None
    near = [_row("slow", 0.001, 100, 95.0), _row("fast", 0.003, 100, 100.0)]  # within 10%: same speed
    assert choose(near, 0.01)["key"] == "slow"


def test_candidate_keys_and_storage_order():
    w4 = Candidate("rtn", 4, "none", None, 128)
    assert w4.key == "rtn W4A16 g128" and w4.storage_bits == 4
    assert Candidate("squant", 4, "int8", 8).key == "squant W4A8" and Candidate("squant", 4).storage_bits == 8


def test_format_table_lists_every_candidate():
    decision = {"model_dir": "m", "data": "v.txt", "budget": 0.01,
                "float": {"loss": 4.0, "tokens": 1000, "weight_bytes": 4000, "tokens_per_s": 500.0},
                "chosen": "rtn W8A8",
                "candidates": [
                    {"key": "rtn W8A8", "candidate": {"method": "rtn", "bits_w": 8, "bits_a": 8, "activations": "int8",
                                                      "group_size": 0}, **_row("rtn W8A8", 0.002, 1000, 400.0)},
                    {"key": "smoothquant W8A8", "status": "skipped", "reason": "needs --calib",
                     "candidate": {"method": "smoothquant", "bits_w": 8, "bits_a": 8, "activations": "int8",
                                   "group_size": 0}}]}
    table = format_table(decision)
    assert "| rtn | W8A8 | int8 | row | +0.200% | 1,000 | 400 | **yes** |" in table
    assert "skipped: needs --calib" in table and "Chosen: rtn W8A8." in table


def _auto(gpt2_dir, out, budget, capsys, *extra):
    from .test_cli import _run

    return _run(["quantize", str(gpt2_dir), "--method", "auto", "--max-loss-increase", budget, "--data",
                 str(gpt2_dir / "calib.txt"), "--seq-len", "32", "--max-seqs", "4", "--out", str(out), *extra],
                capsys)


def test_auto_end_to_end_then_resume(gpt2_dir, tmp_path, capsys):
    import json

    from scalinglab.quant.io import load_quantized

    out = tmp_path / "auto"
    code, stdout, err = _auto(gpt2_dir, out, "50%", capsys, "--all")
    assert code == 0, err
    decision = json.loads((out / "decision.json").read_text())
    rows = {r["key"]: r for r in decision["candidates"]}
    measured = [r for r in rows.values() if r["status"] == "measured"]
    assert rows["smoothquant W8A8"]["status"] == "skipped"  # no --calib: calibrated methods are skipped
    assert {"rtn W8A8", "squant W4A8", "squant W4A16 g32"} <= {r["key"] for r in measured}
    chosen = rows[decision["chosen"]]
    within = [r for r in measured if r["loss_change"] <= 0.5]
    assert chosen["weight_bytes"] == min(r["weight_bytes"] for r in within)
    model, qmap = load_quantized(out)
    assert qmap["config"]["method"] == chosen["candidate"]["method"]
    assert "**yes**" in (out / "decision.md").read_text()
    # a second run reuses every measurement (resume) and makes the same choice
    code, stdout, err = _auto(gpt2_dir, out, "50%", capsys, "--all")
    assert code == 0, err
    assert stdout.count("resumed") == len(measured)
    assert json.loads((out / "decision.json").read_text())["chosen"] == decision["chosen"]


def test_auto_nothing_within_budget_and_bad_budget(gpt2_dir, tmp_path, capsys, monkeypatch):
    import dataclasses

    from scalinglab.quant import evaluate
    from scalinglab.quant.auto import auto_quantize_dir

    real = evaluate.evaluate_model

    def worse_when_quantized(model, batches, **kw):  # an untrained model's loss barely moves: make it move
        r = real(model, batches, **kw)
        quantized = any(type(m).__name__ != "Linear" and hasattr(m, "w_scale") for m in model.modules())
        return dataclasses.replace(r, perplexity=r.perplexity * 1.5) if quantized else r

    monkeypatch.setattr(evaluate, "evaluate_model", worse_when_quantized)
    out = tmp_path / "auto"
    decision = auto_quantize_dir(gpt2_dir, out, gpt2_dir / "calib.txt", 0.01, seq_len=32, max_seqs=4,
                                 candidates=[Candidate("rtn", 8), Candidate("squant", 4)], say=lambda _: None)
    assert all(r["loss_change"] > 0.01 for r in decision["candidates"]) and decision["chosen"] is None
    assert (out / "decision.json").is_file() and not (out / "model.safetensors").exists()
    assert "No candidate met the budget" in (out / "decision.md").read_text()
    code, _, err = _auto(gpt2_dir, tmp_path / "x", "5", capsys)
    assert code == 2 and "--max-loss-increase" in err and "Traceback" not in err
    code, _, err = _auto(gpt2_dir, tmp_path / "x", "1%", capsys, "--bits", "4")
    assert code == 2 and "--bits" in err
