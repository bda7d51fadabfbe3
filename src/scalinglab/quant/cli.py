"""`scalinglab quantize`, `scalinglab evaluate` and `scalinglab bench int8`: parse, call, print.

Examples:
    scalinglab quantize out/gpt2-shk --method llm.int8 --calib out/gpt2-shk/calib.txt --out out/gpt2-int8 --analyze
    scalinglab quantize out/gpt2-shk --method outliertune --bits 6 --calib calib.txt --out out/gpt2-ot6
    scalinglab quantize out/gpt2-shk --method rtn --activations none --bits 4 --group-size 128 --out out/gpt2-w4
    scalinglab quantize out/gpt2-shk --method squant --bits 4 --out out/gpt2-sq4          # data-free, no --calib
    scalinglab quantize out/gpt2-shk --method auto --max-loss-increase 1% --data out/gpt2-shk/valid.txt \\
        --calib out/gpt2-shk/calib.txt --out out/gpt2-auto
    scalinglab evaluate out/gpt2-int8 --data out/gpt2-shk/valid.txt --json
    scalinglab bench int8 --quick
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from scalinglab.clikit import JSON_HELP
from scalinglab.errors import InputError
from scalinglab.quant.config import OUTLIER_THRESHOLD
from scalinglab.quant.methods import DEFAULT as DEFAULT_METHOD
from scalinglab.quant.registry import method_names

__all__ = ["register"]


def quantize_cmd(
    model_dir: Path = typer.Argument(..., help="Hugging Face layout dir: config.json, safetensors, tokenizer."),
    method: str = typer.Option(DEFAULT_METHOD, "--method", help=" | ".join((*method_names(), "auto"))),
    bits: int = typer.Option(None, "--bits", help="Weight (and activation) bit width: 8, 6 or 4 (default 8)."),
    activations: str = typer.Option(None, "--activations",
                                    help="int8: weights and activations quantized (default); none: weight-only."),
    group_size: int = typer.Option(None, "--group-size",
                                   help="Weight-only: columns per weight scale, 32, 64 or 128 (0: one per row)."),
    calib: Path = typer.Option(None, "--calib", help="Text file for calibration (the model's own distribution); "
                                                    "data-free methods run without it."),
    out: Path = typer.Option(..., "--out", help="Directory for the quantized checkpoint."),
    n_seqs: int = typer.Option(128, "--calib-seqs", help="Calibration sequences (128–512 is typical)."),
    seq_len: int = typer.Option(0, "--seq-len", help="Tokens per sequence (0: the model's context)."),
    alpha: float = typer.Option(None, "--alpha", help="SmoothQuant migration strength (default 0.5)."),
    threshold: float = typer.Option(None, "--threshold", help="LLM.int8 outlier magnitude (default 6)."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="rtn: per-tensor weight and activation scales."),
    stats: str = typer.Option(None, "--stats", help="squant: input moments to round for: sampled (text the model "
                                                     "samples itself; default with one scale per row), norm (the "
                                                     "norm's γ, β) or none (plain SQuant; default with groups)."),
    analyze: bool = typer.Option(False, "--analyze", help="Print the per-layer outlier table."),
    max_loss: str = typer.Option(None, "--max-loss-increase",
                                 help="--method auto: loss budget vs the float model, 0.5% or 0.005."),
    data: Path = typer.Option(None, "--data", help="--method auto: held-out text each candidate is evaluated on."),
    max_seqs: int = typer.Option(0, "--max-seqs", help="--method auto: cap on evaluated sequences (0: all)."),
    try_all: bool = typer.Option(False, "--all", help="--method auto: measure every candidate, not only up to "
                                                      "the first storage size within the budget."),
) -> None:
    """Quantize a checkpoint post-training and save it (safetensors + quantization.json).

    --method auto tries methods × bits from the smallest storage up on --data and keeps the smallest model
    within --max-loss-increase, with decision.json / decision.md (every candidate) beside it."""
    from scalinglab.quant.pipeline import quantize_dir
    from scalinglab.quant.registry import config_for

    if method == "auto":
        from scalinglab.quant.auto import run_auto

        for flag, value in (("--bits", bits), ("--activations", activations), ("--group-size", group_size),
                            ("--alpha", alpha), ("--threshold", threshold), ("--stats", stats)):
            if value is not None:
                raise InputError(f"{flag}: --method auto chooses it; leave it out")
        raise typer.Exit(run_auto(model_dir, out, data, max_loss, calib, seq_len, max_seqs, n_seqs, try_all))
    auto_only = (("--max-loss-increase", max_loss), ("--data", data), ("--all", try_all or None),
                 ("--max-seqs", max_seqs or None))
    for flag, value in auto_only:
        if value is not None:
            raise InputError(f"{flag}: applies to --method auto only")
    config = config_for(method, bits=bits, activations=activations, group_size=group_size, alpha=alpha,
                        threshold=threshold, per_tensor=per_tensor or None, stats=stats)
    summary = quantize_dir(model_dir, out, calib, config, n_seqs=n_seqs, seq_len=seq_len, analyze=analyze,
                           threshold=getattr(config, "threshold", OUTLIER_THRESHOLD))
    if analyze:
        print(summary.pop("table"))
    print(json.dumps(summary))


def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="Float or quantized checkpoint directory."),
    data: Path = typer.Option(..., "--data", help="Held-out text file."),
    seq_len: int = typer.Option(0, "--seq-len", help="Tokens per sequence (0: the model's context)."),
    max_seqs: int = typer.Option(0, "--max-seqs", help="Cap on evaluated sequences (0: all)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (float and weight-only checkpoints)."),
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
