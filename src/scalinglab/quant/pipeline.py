"""Directory-level workflows behind the CLI: checkpoint dir + text file → quantized dir, or → metrics."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from scalinglab.errors import InputError
from scalinglab.paths import output_dir
from scalinglab.quant.analyze import format_table, outlier_rows
from scalinglab.quant.apply import quantize_
from scalinglab.quant.config import OUTLIER_THRESHOLD, MethodConfig
from scalinglab.quant.evaluate import evaluate_model, linear_bytes, load_any, model_bytes
from scalinglab.quant.io import save_quantized
from scalinglab.quant.models import (
    context_length,
    forward_logits,
    load_float_model,
    load_tokenizer,
    read_text,
    text_to_batches,
)

__all__ = ["quantize_dir", "evaluate_dir"]


def _check_seq_len(seq_len: int) -> None:
    if seq_len < 0:
        raise InputError(f"--seq-len: {seq_len} must be >= 0 (0: the model's context)")


def _resolve_seq_len(seq_len: int, model) -> int:
    """0 → the model's context (at most 512); longer than the context is refused (positions do not exist)."""
    context = context_length(model)
    if seq_len > context:
        raise InputError(f"--seq-len: {seq_len} is longer than the model's context of {context} tokens")
    return seq_len or min(context, 512)


def quantize_dir(model_dir: Path, out: Path, calib: Path | None, config: MethodConfig, n_seqs: int = 128,
                 seq_len: int = 0, analyze: bool = False, threshold: float = OUTLIER_THRESHOLD) -> dict:
    """Load, calibrate, quantize, save; returns a summary (and the outlier table when ``analyze``).

    ``calib`` may be None for a method that needs no calibration (``config.needs_calibration``); the
    outlier analysis then has no statistics to show. ``threshold``: the analysis' outlier magnitude."""
    if n_seqs < 1:
        raise InputError(f"--calib-seqs: {n_seqs} must be >= 1")
    _check_seq_len(seq_len)
    if calib is None and (config.needs_calibration or analyze):
        why = f"method {config.name} needs" if config.needs_calibration else "--analyze needs"
        raise InputError(f"--calib: {why} calibration text, got none")
    model_dir = Path(model_dir)
    out = output_dir(out, "--out")
    if out.resolve() == model_dir.resolve():
        raise InputError(f"--out: {out} is the input checkpoint; give a new directory")
    text = read_text(calib) if calib is not None else None
    model = load_float_model(model_dir)
    seq_len = _resolve_seq_len(seq_len, model)
    batches = None
    if text is not None:
        batches = text_to_batches(text, load_tokenizer(model_dir), seq_len, n_seqs, source=str(calib))
    before = model_bytes(model), linear_bytes(model, config.skip)
    t0 = time.perf_counter()
    report = quantize_(model, config, calib=batches, forward=forward_logits, threshold=threshold)
    seconds = time.perf_counter() - t0
    try:
        save_quantized(model, out, config, source_dir=model_dir)
    except OSError as exc:
        raise InputError(f"--out: cannot write {out} ({exc.strerror or type(exc).__name__})") from None
    summary = {"out": str(out), "method": config.name, "bits_w": config.bits_w, "bits_a": config.bits_a,
               "layers": report["n_quantized"], "calib_tokens": sum(b.numel() for b in batches or []),
               "seconds": round(seconds, 2), "weight_bytes_before": before[0], "weight_bytes": model_bytes(model),
               "linear_bytes_before": before[1], "linear_bytes": linear_bytes(model, config.skip),
               "norm_pairs": sum(len(v) for v in report["pairs"].values()),
               "left_in_float": report["left_in_float"]}
    if analyze:
        summary["table"] = format_table(outlier_rows(report["stats"]), threshold)
    return summary


def evaluate_dir(model_dir: Path, data: Path, seq_len: int = 0, max_seqs: int | None = None,
                 dtype: str = "float32", device: str = "cpu") -> dict:
    """Metrics of a checkpoint on ``device`` (auto | cpu | cuda; quantized layers run torch._int_mm on CUDA)."""
    from scalinglab.ladder.device import resolve_device

    if dtype not in ("float32", "bfloat16"):
        raise InputError(f"--dtype: expected float32 or bfloat16, got {dtype!r}")
    _check_seq_len(seq_len)
    if max_seqs is not None and max_seqs < 0:
        raise InputError(f"--max-seqs: {max_seqs} must be >= 0 (0: all)")
    max_seqs = max_seqs or None
    device = resolve_device(device)
    model_dir = Path(model_dir)
    text = read_text(data)
    model, label = load_any(model_dir)
    if dtype == "bfloat16":
        from scalinglab.quant.linear import QuantLinear

        if any(isinstance(m, QuantLinear) for m in model.modules()):
            raise InputError(f"--dtype bfloat16 applies to float and weight-only checkpoints; {model_dir} holds "
                             f"int8-activation layers ({label})")
        model = model.to(torch.bfloat16)  # weight-only layers keep their stored codes, steps and bias
        label = "bf16" if label == "none" else f"{label}, bf16 activations"
    tok = load_tokenizer(model_dir)
    seq_len = _resolve_seq_len(seq_len, model)
    batches = text_to_batches(text, tok, seq_len, max_seqs, source=str(data))
    return {**evaluate_model(model.to(device), batches, quantization=label).to_dict(), "device": device}
