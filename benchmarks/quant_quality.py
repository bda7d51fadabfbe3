"""Perplexity of one checkpoint under every quantization method. Run:

    python examples/train_outlier_gpt2.py --corpus SHAKESPEARE_TEXTS --out out/gpt2-shk   # ~30 min, 1 core
    python benchmarks/quant_quality.py out/gpt2-shk [--calib-seqs 128] [--markdown]

MODEL_DIR must hold calib.txt and valid.txt (the training script writes both: disjoint held-out slices
of the corpus). Prints the outlier analysis, then one row per method: perplexity on valid.txt, its
change against fp32, the measured bytes of the linear layers, and the wall time of the evaluation.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from scalinglab.quant import (
    LLMInt8Config,
    OutlierTuneConfig,
    RTNConfig,
    SmoothQuantConfig,
    find_linears,
    quantize_,
)
from scalinglab.quant.analyze import format_table, outlier_rows
from scalinglab.quant.evaluate import linear_bytes, perplexity
from scalinglab.quant.models import (
    context_length,
    forward_logits,
    load_float_model,
    load_tokenizer,
    read_text,
    text_to_batches,
)

ROWS = [
    ("fp32", None),
    ("bf16", "bf16"),
    ("RTN W8A8 per-tensor", RTNConfig(w_granularity="tensor", a_granularity="tensor")),
    ("RTN W8A8 per-channel/per-token", RTNConfig()),
    ("LLM.int8()", LLMInt8Config()),
    ("SmoothQuant W8A8", SmoothQuantConfig()),
    ("OutlierTune W8A8", OutlierTuneConfig()),
    ("OutlierTune W6A6", OutlierTuneConfig(bits_w=6, bits_a=6)),
    ("RTN W6A6 per-channel/per-token", RTNConfig(bits_w=6, bits_a=6)),
    ("SmoothQuant W6A6", SmoothQuantConfig(bits_w=6, bits_a=6)),
    ("RTN W6A6 per-tensor", RTNConfig(bits_w=6, bits_a=6, w_granularity="tensor",
                                        a_granularity="tensor")),
    ("OutlierTune W4A4", OutlierTuneConfig(bits_w=4, bits_a=4)),
]


LAYER_METHODS = {
    "RTN per-tensor W8A8": RTNConfig(w_granularity="tensor", a_granularity="tensor"),
    "RTN per-token W8A8": RTNConfig(),
    "LLM.int8()": LLMInt8Config(),
    "RTN per-tensor W6A6": RTNConfig(bits_w=6, bits_a=6, w_granularity="tensor", a_granularity="tensor"),
}


@torch.no_grad()
def layer_errors(model, batch, stats) -> None:
    """Per linear: outlier dims of its input and ‖Y_q − Y‖/‖Y‖ for each method, on one calibration batch —
    where outliers exist, per-tensor scales should hurt."""
    from scalinglab.quant.calibrate import linear_weight
    from scalinglab.quant.registry import method_for

    linears = find_linears(model)
    inputs = {}
    hs = [m.register_forward_pre_hook(lambda _m, a, n=n: inputs.__setitem__(n, a[0].reshape(-1, a[0].shape[-1])))
          for n, m in linears.items()]
    forward_logits(model, batch)
    for h in hs:
        h.remove()
    print("\n| layer | outlier dims (≥6) | max abs | " + " | ".join(LAYER_METHODS) + " |")
    print("|---|---:|---:|" + "---:|" * len(LAYER_METHODS))
    for name, lin in linears.items():
        x, w = inputs[name].float(), linear_weight(lin).detach().float()
        b = None if lin.bias is None else lin.bias.detach().float()
        y = x @ w.T + (0 if b is None else b)
        errs = []
        for cfg in LAYER_METHODS.values():
            q = method_for(cfg).linear(w, b, stats[name], cfg)
            errs.append(float((q(x) - y).norm() / y.norm()))
        st = stats[name]
        print(f"| {name} | {int(st.outlier_cols().numel())} | {float(st.amax.max()):.1f} | "
              + " | ".join(f"{100 * e:.2f}%" for e in errs) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--calib-seqs", type=int, default=128)
    ap.add_argument("--max-seqs", type=int, default=0, help="cap on validation sequences (0: all)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_float_model(args.model_dir)
    tok = load_tokenizer(args.model_dir)
    seq = context_length(base)
    calib = text_to_batches(read_text(args.model_dir / "calib.txt"), tok, seq, args.calib_seqs)
    valid = text_to_batches(read_text(args.model_dir / "valid.txt"), tok, seq, args.max_seqs or None, batch_size=16)
    n_params = sum(p.numel() for p in base.parameters())
    print(f"{args.model_dir}: {n_params / 1e6:.2f}M parameters, context {seq}; calibration "
          f"{sum(b.numel() for b in calib):,} tokens, validation {sum(b.numel() for b in valid):,} tokens")
    fp_linear = linear_bytes(base)
    rows = []
    for label, cfg in ROWS:
        model = copy.deepcopy(base)
        if cfg == "bf16":
            model = model.to(torch.bfloat16)
        elif cfg is not None:
            report = quantize_(model, cfg, calib=calib, forward=forward_logits, threshold=LLMInt8Config().threshold)
            if isinstance(cfg, LLMInt8Config):
                print(format_table(outlier_rows(report["stats"]), cfg.threshold))
                layer_errors(copy.deepcopy(base), calib[0], report["stats"])
        t0 = time.perf_counter()
        ppl, n = perplexity(model, valid)
        rows.append((label, ppl, linear_bytes(model), time.perf_counter() - t0))
        print(f"  {label:<32} ppl {ppl:9.3f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
    fp = rows[0][1]
    print("\n| method | perplexity | vs fp32 | linear-layer bytes | × smaller | eval s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, ppl, nbytes, secs in rows:
        print(f"| {label} | {ppl:.3f} | {100 * (ppl / fp - 1):+.2f}% | {nbytes:,} | {fp_linear / nbytes:.2f}× | {secs:.1f} |")


if __name__ == "__main__":
    main()
