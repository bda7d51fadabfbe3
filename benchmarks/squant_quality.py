"""SQuant vs round-to-nearest, both data-free, weight-only: perplexity of one checkpoint at 8, 6 and 4 bits.

    python examples/train_outlier_gpt2.py --corpus SHAKESPEARE_TEXTS --out out/gpt2-shk   # ~30 min, 1 core
    python benchmarks/squant_quality.py out/gpt2-shk [--max-seqs 256] [--kernel-sizes 1 32]

Both methods use the same per-output-channel absmax scales and differ only in the rounding decisions, so
each linear weight (the LM head excepted, as in `quantize`) is replaced by its dequantized codes q·s and
the model runs in float32: the rows isolate the weight error. Printed per row: perplexity on MODEL_DIR's
valid.txt, its change against fp32, and the mean over rows of |Σ_i δ_i| (the output-channel error sum in
units of the scale, which SQuant bounds by 0.5) and of ‖δ‖² (the element error RTN minimises).
"SQuant + norm moments" (``stats="norm"``) rounds the linears fed by a LayerNorm for the input moments
μ = β, v = γ² of that norm and the others by plain SQuant; "SQuant + sampled moments" (``stats="sampled"``,
the method's default) rounds every linear for the input moments on text the model sampled itself;
"SQuant" is ``stats="none"``.
``--groups 128`` adds rows for the real packed weight-only layers, RTN (``weight_only``) vs SQuant with the
same group-wise asymmetric scales and zero points. ``--layers BITS`` then prints, per linear, the output error ‖X·(Ŵ − W)ᵀ‖/‖X·Wᵀ‖ of RTN and SQuant on the
inputs of one held-out batch, with the mean of the inputs relative to their spread (SQuant's row-sum
criterion is exact for inputs that are constant along the row and blind to zero-mean ones).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from scalinglab.quant import find_linears, quantize_
from scalinglab.quant.apply import find_norm_pairs
from scalinglab.quant.calibrate import linear_weight
from scalinglab.quant.evaluate import perplexity
from scalinglab.quant.methods.squant import SQuantConfig, norm_moments, sampled_moments
from scalinglab.quant.methods.weight_only import WeightOnlyConfig
from scalinglab.quant.models import (
    context_length,
    forward_logits,
    load_float_model,
    load_tokenizer,
    read_text,
    text_to_batches,
)
from scalinglab.quant.primitives import amax_to_scale, qmax_for_bits, quantize_weight
from scalinglab.quant.squant import moment_codes, squant_weight

SKIP = ("lm_head",)


def norm_hints(model) -> dict[str, dict]:
    """{linear name: {"mean": β, "var": γ²}} for the linears fed directly by a norm (what ``quantize_`` passes
    to the squant method with ``stats="norm"``)."""
    linears = find_linears(model, SKIP)
    modules = dict(model.named_modules())
    pairs = find_norm_pairs(model, linears, torch.zeros(1, 8, dtype=torch.long), forward_logits)
    cfg = SQuantConfig(stats="norm")
    return {k: v for norm, names in pairs.items()
            for k, v in norm_moments(modules[norm], {n: linears[n] for n in names}, cfg).items()}


def sampled_hints(model) -> dict[str, dict]:
    """{linear name: {"mean", "var"}} on text the model samples itself (``stats="sampled"``)."""
    return sampled_moments(model, find_linears(model, SKIP), SQuantConfig(stats="sampled"), forward_logits)


def moment_weight(w: torch.Tensor, bits: int, hint: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row absmax scales; moment codes where the layer has norm moments, plain SQuant elsewhere."""
    if hint is None:
        return squant_weight(w, bits)
    scale = amax_to_scale(w.abs().amax(dim=1), qmax_for_bits(bits))
    return moment_codes(w, scale[:, None], bits, hint["mean"], hint["var"]), scale


@torch.no_grad()
def replace_weights_(model, codes_fn, skip=SKIP) -> tuple[float, float]:
    """Overwrite every linear's weight by q·s from ``codes_fn(W, name) -> (codes, scale)``; returns the mean
    row |Σδ| and mean row Σδ² over all layers."""
    sums, sqs = [], []
    for name, m in find_linears(model, skip).items():
        w = linear_weight(m).detach().float()
        q, s = codes_fn(w, name)
        delta = q.float() - w / s[:, None]
        sums.append(delta.sum(1).abs())
        sqs.append((delta ** 2).sum(1))
        w_hat = (q.float() * s[:, None]).to(m.weight.dtype)
        m.weight.copy_(w_hat.t() if type(m).__name__ == "Conv1D" else w_hat)
    return float(torch.cat(sums).mean()), float(torch.cat(sqs).mean())


@torch.no_grad()
def layer_table(model, batch, bits: int, kernel_size: int = 1) -> None:
    """Per linear: relative output error of RTN and SQuant codes on the layer's actual inputs."""
    from scalinglab.quant.models import forward_logits

    linears = find_linears(model, SKIP)
    hints, sampled = norm_hints(model), sampled_hints(model)
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: inputs.__setitem__(n, a[0].reshape(-1, a[0].shape[-1])))
             for n, m in linears.items()]
    forward_logits(model, batch)
    for h in hooks:
        h.remove()
    print(f"\n| layer | input mean / rms | RTN W{bits} output error | SQuant W{bits} | SQuant + norm moments "
          "| SQuant + sampled moments |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in linears.items():
        x, w = inputs[name].float(), linear_weight(m).detach().float()
        y = x @ w.T
        errs = []
        for q, s in (quantize_weight(w, bits), squant_weight(w, bits, kernel_size),
                     moment_weight(w, bits, hints.get(name)), moment_weight(w, bits, sampled.get(name))):
            errs.append(float((x @ (q.float() * s[:, None] - w).T).norm() / y.norm()))
        ratio = float(x.mean(0).norm() / x.pow(2).mean(0).sqrt().norm())
        print(f"| {name} | {ratio:.2f} | " + " | ".join(f"{100 * e:.2f}%" for e in errs) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--max-seqs", type=int, default=256)
    ap.add_argument("--bits", type=int, nargs="+", default=[6, 4])
    ap.add_argument("--kernel-sizes", type=int, nargs="+", default=[1])
    ap.add_argument("--groups", type=int, nargs="*", default=[],
                    help="also run the real weight-only layers (weight_only vs squant --activations none) with "
                         "these group sizes (0: one per row)")
    ap.add_argument("--layers", type=int, default=0, help="also print the per-layer output errors at these bits")
    ap.add_argument("--layers-only", action="store_true", help="skip the perplexity rows")
    args = ap.parse_args()

    model = load_float_model(args.model_dir)
    tok = load_tokenizer(args.model_dir)
    seq = min(context_length(model), 512)
    batches = text_to_batches(read_text(args.model_dir / "valid.txt"), tok, seq, args.max_seqs)
    hints, sampled = norm_hints(model), sampled_hints(model)
    if args.layers:
        layer_table(model, batches[0], args.layers)
    if args.layers_only:
        return
    t0 = time.perf_counter()
    base, n = perplexity(model, batches)
    print(f"{args.model_dir}: {n:,} tokens of valid.txt ({len(batches)} batches × {seq}), fp32 ppl {base:.3f} "
          f"({time.perf_counter() - t0:.1f} s)")
    print("| weights | rounding | perplexity | vs fp32 | mean row \\|Σδ\\| | mean row Σδ² |")
    print("|---|---|---:|---:|---:|---:|")
    for bits in args.bits:
        rows = [("RTN", lambda w, _n, b=bits: quantize_weight(w, b))]
        rows += [(f"SQuant (kernel {k})" if k > 1 else "SQuant", lambda w, _n, b=bits, k=k: squant_weight(w, b, k))
                 for k in args.kernel_sizes]
        rows += [("SQuant + norm moments", lambda w, n, b=bits: moment_weight(w, b, hints.get(n))),
                 ("SQuant + sampled moments", lambda w, n, b=bits: moment_weight(w, b, sampled.get(n)))]
        for label, fn in rows:
            m = copy.deepcopy(model)
            row_sum, row_sq = replace_weights_(m, fn)
            ppl, _ = perplexity(m, batches)
            print(f"| W{bits}A16 | {label} | {ppl:.3f} | {100 * (ppl / base - 1):+.3f}% | {row_sum:.3f} | "
                  f"{row_sq:.2f} |", flush=True)
        for g in args.groups:
            for label, cfg in (("RTN (weight_only)", WeightOnlyConfig(bits_w=bits, group_size=g)),
                               ("SQuant", SQuantConfig(bits_w=bits, activations="none", group_size=g, stats="none")),
                               ("SQuant + norm moments", SQuantConfig(bits_w=bits, activations="none", group_size=g,
                                                                      stats="norm")),
                               ("SQuant + sampled moments", SQuantConfig(bits_w=bits, activations="none",
                                                                         group_size=g, stats="sampled"))):
                m = copy.deepcopy(model)
                quantize_(m, cfg)
                ppl, _ = perplexity(m, batches)
                print(f"| W{bits}A16 g{g or 'row'} (packed) | {label} | {ppl:.3f} | {100 * (ppl / base - 1):+.3f}% "
                      f"| | |", flush=True)


if __name__ == "__main__":
    main()
