"""`scalinglab quantize`, `scalinglab evaluate` and `scalinglab bench int8`: parse, call, print.

Examples:
    scalinglab quantize out/gpt2-shk --method llm.int8 --calib out/gpt2-shk/calib.txt --out out/gpt2-int8 --analyze
    scalinglab quantize out/gpt2-shk --method outliertune --bits 6 --calib calib.txt --out out/gpt2-ot6
    scalinglab evaluate out/gpt2-int8 --data out/gpt2-shk/valid.txt --json
    scalinglab bench int8 --quick
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from scalinglab.clikit import JSON_HELP
from scalinglab.quant.config import OUTLIER_THRESHOLD

__all__ = ["register"]


def quantize_cmd(
    model_dir: Path = typer.Argument(..., help="Hugging Face layout dir: config.json, safetensors, tokenizer."),
    method: str = typer.Option("llm.int8", "--method", help="rtn | llm.int8 | smoothquant | outliertune"),
    bits: int = typer.Option(8, "--bits", help="Weight and activation bit width: 8, 6 or 4."),
    calib: Path = typer.Option(..., "--calib", help="Text file for calibration (the model's own distribution)."),
    out: Path = typer.Option(..., "--out", help="Directory for the quantized checkpoint."),
    n_seqs: int = typer.Option(128, "--calib-seqs", help="Calibration sequences (128–512 is typical)."),
    seq_len: int = typer.Option(0, "--seq-len", help="Tokens per sequence (0: the model's context)."),
    alpha: float = typer.Option(0.5, "--alpha", help="SmoothQuant migration strength."),
    threshold: float = typer.Option(OUTLIER_THRESHOLD, "--threshold", help="LLM.int8 outlier magnitude."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="rtn: per-tensor weight and activation scales."),
    analyze: bool = typer.Option(False, "--analyze", help="Print the per-layer outlier table."),
) -> None:
    """Quantize a checkpoint post-training and save it (safetensors + quantization.json)."""
    from scalinglab.quant.pipeline import quantize_dir

    gran = dict(w_granularity="tensor", a_granularity="tensor") if per_tensor else {}
    summary = quantize_dir(model_dir, out, calib, method=method, bits=bits, n_seqs=n_seqs, seq_len=seq_len,
                           alpha=alpha, threshold=threshold, analyze=analyze, **gran)
    if analyze:
        print(summary.pop("table"))
    print(json.dumps(summary))


def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="Float or quantized checkpoint directory."),
    data: Path = typer.Option(..., "--data", help="Held-out text file."),
    seq_len: int = typer.Option(0, "--seq-len", help="Tokens per sequence (0: the model's context)."),
    max_seqs: int = typer.Option(0, "--max-seqs", help="Cap on evaluated sequences (0: all)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (float checkpoints only)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when torch sees a GPU) | cpu | cuda."),
) -> None:
    """Perplexity, measured weight bytes, tokens, latency and throughput of a checkpoint."""
    from scalinglab.quant.pipeline import evaluate_dir

    res = evaluate_dir(model_dir, data, seq_len=seq_len, max_seqs=max_seqs or None, dtype=dtype, device=device)
    if as_json:
        print(json.dumps(res))
    else:
        from scalinglab.clikit import key_value_table
        from scalinglab.console import stdout_console

        stdout_console.print(key_value_table(res, title=str(model_dir)))


def bench_int8_cmd(
    quick: bool = typer.Option(False, "--quick", help="Two small shapes only (a smoke run)."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: leave as is)."),
    as_json: bool = typer.Option(False, "--json", help="Print the timed rows as a JSON array (the table goes "
                                                      "to stderr)."),
) -> None:
    """fp32 vs bf16 vs our W8A8 and LLM.int8 linear, d = 768…4096, M = 1…2048 (benchmarks/int8_linear.py)."""
    from scalinglab.clikit import json_or_tables
    from scalinglab.quant.bench import run_int8_bench

    json_or_tables(as_json, lambda: run_int8_bench(quick=quick, threads=threads))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("quantize", help=quantize_cmd.__doc__ + "\n\n" + __doc__.split("Examples:")[1])(quantize_cmd)
    app.command("evaluate")(evaluate_cmd)
    bench_app.command("int8")(bench_int8_cmd)
