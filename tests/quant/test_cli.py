"""`scalinglab quantize` / `evaluate` end to end on a tiny GPT-2 dir; bad input exits 2 with one line."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    cap = capsys.readouterr()
    return exc.value.code or 0, cap.out, cap.err


def test_quantize_then_evaluate_json(gpt2_dir, tmp_path, capsys):
    out = tmp_path / "q"
    code, stdout, err = _run(["quantize", str(gpt2_dir), "--method", "llm.int8", "--calib",
                              str(gpt2_dir / "calib.txt"), "--out", str(out), "--calib-seqs", "8",
                              "--seq-len", "32", "--analyze"], capsys)
    assert code == 0, err
    assert "outlier" not in err and "#dims" in stdout  # the analysis table
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["layers"] == 8 and summary["linear_bytes"] < summary["linear_bytes_before"] / 3
    results = {}
    for d in (gpt2_dir, out):
        code, stdout, err = _run(["evaluate", str(d), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32",
                                  "--max-seqs", "8", "--json"], capsys)
        assert code == 0, err
        results[d] = json.loads(stdout)
    for key in ("perplexity", "weight_bytes", "tokens", "latency_ms", "throughput_tok_s"):
        assert key in results[out]
    fp, q = results[gpt2_dir], results[out]
    assert q["tokens"] == fp["tokens"] and q["weight_bytes"] < fp["weight_bytes"]
    assert abs(q["perplexity"] / fp["perplexity"] - 1) < 0.05


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "gptq"], "--method"),
        (["--bits", "5"], "--bits"),
        (["--method", "llm.int8", "--bits", "4"], "llm.int8"),
        (["--method", "rtn", "--alpha", "0.7"], "--alpha: does not apply to --method rtn"),
        (["--method", "smoothquant", "--activations", "none"], "--activations"),
        (["--method", "rtn", "--group-size", "64"], "--group-size"),
    ],
    ids=["unknown-method", "bad-bits", "llm.int8-at-4-bits", "alpha-for-rtn", "weight-only-smoothquant",
         "group-size-for-w8a8"],
)
def test_quantize_bad_options_exit_2(gpt2_dir, tmp_path, capsys, args, needle):
    code, _, err = _run(["quantize", str(gpt2_dir), "--calib", str(gpt2_dir / "calib.txt"), "--out",
                         str(tmp_path / "q"), *args], capsys)
    assert code == 2 and needle in err and "Traceback" not in err


def test_missing_model_dir_and_data_exit_2(gpt2_dir, tmp_path, capsys):
    code, _, err = _run(["evaluate", str(tmp_path / "nope"), "--data", str(gpt2_dir / "calib.txt")], capsys)
    assert code == 2 and "config.json" in err
    code, _, err = _run(["evaluate", str(gpt2_dir), "--data", str(tmp_path / "none.txt")], capsys)
    assert code == 2 and "none.txt" in err


def test_data_free_method_needs_no_calib(gpt2_dir, tmp_path, capsys):
    code, stdout, err = _run(["quantize", str(gpt2_dir), "--method", "rtn", "--bits", "8", "--out", str(tmp_path / "q"),
                              "--seq-len", "32"], capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["layers"] == 8 and summary["calib_tokens"] == 0 and summary["method"] == "rtn"
    code, _, err = _run(["quantize", str(gpt2_dir), "--method", "smoothquant", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "--calib: method smoothquant needs calibration text" in err


def test_weight_only_from_the_cli(gpt2_dir, tmp_path, capsys):
    out = tmp_path / "w4"
    code, stdout, err = _run(["quantize", str(gpt2_dir), "--method", "rtn", "--activations", "none", "--bits", "4",
                              "--group-size", "32", "--out", str(out), "--seq-len", "32"], capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["method"] == "weight_only" and (summary["bits_w"], summary["bits_a"]) == (4, None)
    assert summary["linear_bytes"] < summary["linear_bytes_before"] / 5
    code, stdout, err = _run(["evaluate", str(out), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32",
                              "--max-seqs", "4", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["quantization"] == "weight_only W4A16 g32"


def test_bf16_evaluation_of_float_and_weight_only_dirs(gpt2_dir, tmp_path, capsys):
    """Weight-only checkpoints are A16: --dtype bfloat16 runs them with bf16 activations (the bf16 kernels);
    int8-activation checkpoints are refused in one line."""
    out, w8a8 = tmp_path / "w4", tmp_path / "w8a8"
    for argv in (["--method", "rtn", "--activations", "none", "--bits", "4", "--group-size", "32", "--out", str(out)],
                 ["--method", "rtn", "--bits", "8", "--out", str(w8a8)]):
        code, _, err = _run(["quantize", str(gpt2_dir), *argv, "--seq-len", "32"], capsys)
        assert code == 0, err
    res = {}
    for d, dtype in ((gpt2_dir, "float32"), (gpt2_dir, "bfloat16"), (out, "float32"), (out, "bfloat16")):
        code, stdout, err = _run(["evaluate", str(d), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32",
                                  "--max-seqs", "4", "--dtype", dtype, "--json"], capsys)
        assert code == 0, err
        res[d, dtype] = json.loads(stdout)
    assert res[out, "bfloat16"]["quantization"] == "weight_only W4A16 g32, bf16 activations"
    assert res[out, "bfloat16"]["weight_bytes"] < res[gpt2_dir, "bfloat16"]["weight_bytes"]  # codes not recast
    # bf16 activations move the loss by about as much for the W4 model as for the float one
    shift_fp = res[gpt2_dir, "bfloat16"]["perplexity"] / res[gpt2_dir, "float32"]["perplexity"]
    shift_w4 = res[out, "bfloat16"]["perplexity"] / res[out, "float32"]["perplexity"]
    assert abs(shift_fp - 1) < 0.02 and abs(shift_w4 - 1) < 0.02
    code, _, err = _run(["evaluate", str(w8a8), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32",
                         "--dtype", "bfloat16"], capsys)
    assert code == 2 and "int8-activation" in err and "Traceback" not in err
