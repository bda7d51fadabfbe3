"""The CUDA paths end to end on one GPU: train a small ladder, fit it, quantize, evaluate, time int8 vs bf16.

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py [--out DIR]     # needs a CUDA GPU
    python benchmarks/gpu_check.py --cpu                               # dry run of the plumbing, tiny sizes

Sections (each runs even if an earlier one failed; results go to ``DIR/gpu_check.json`` after each;
a section that would start after ``--budget-s`` is skipped):
1. dispatch  — ``cross_entropy_fastest`` on device logits falls back to torch and agrees with it.
2. gemm      — a d × d linear, M rows: bf16 ``F.linear`` vs our ``QuantLinear`` (W8A8 per-token: quantize,
               ``torch._int_mm``, dequant; fused by Inductor and eager; K-major weight and the CPU's
               N-major one) vs the bare ``torch._int_mm`` in both weight layouts.
3. ladder    — the demo ladder (5 sizes × 3 budgets, synthetic language with a known floor) trained with
               ``device: cuda`` and ``gpus_per_job: 0.25`` (four jobs share the GPU), then a Chinchilla fit
               whose E is compared with the exact entropy floor.
4. quant     — the best ladder model: perplexity on the held-out set in fp32 and bf16 on the GPU, and
               RTN W8A8 / LLM.int8 quantized (calibrated on CPU), run on the GPU and on the CPU.
5. compile   — one GPT training step, bf16 autocast, eager vs ``torch.compile``: ms/step, one-off compile
               seconds, and the break-even run length (what ``compile: auto`` rests on).
6. autotune  — Inductor max-autotune of the whole int8 linear (Triton int8 GEMM templates, dequant fused
               into the GEMM) against cuBLAS ``_int_mm`` + epilogue and bf16, at two large shapes.

Timings on CUDA are CUDA-event medians after warm-up; on CPU (``--cpu``) wall-clock medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

GEMM_DIMS = (1024, 4096, 8192)
GEMM_MS = (16, 512, 4096, 16384)
COMPILE_SHAPES = {  # name: (GPTConfig fields, batch size)
    "demo-d64-L2": ({"vocab_size": 64, "seq_len": 64, "d_model": 64, "n_layer": 2, "n_head": 2}, 32),
    "d512-L8": ({"vocab_size": 1024, "seq_len": 256, "d_model": 512, "n_layer": 8, "n_head": 8}, 32),
}


def timed(fn, device: str, reps: int = 20, warmup: int = 3) -> float:
    """Median seconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def section_dispatch(device: str, small: bool) -> dict:
    from scalinglab.kernels.softmax_dispatch import cross_entropy_fastest, use_kernel

    n, v = (256, 512) if small else (4096, 32000)
    g = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(n, v, device=device, generator=g)
    tgt = torch.randint(0, v, (n,), device=device, generator=g)
    ours = cross_entropy_fastest(logits, tgt)
    ref = F.cross_entropy(logits, tgt)
    out = {"shape": [n, v], "kernel_eligible_on_cpu": use_kernel(n, v), "result_device": str(ours.device),
           "abs_diff": float((ours - ref).abs()), "torch_fallback": device != "cpu"}
    out["quant_linear_max_abs_diff_vs_cpu"] = _quant_linear_agreement(device)
    return out


def _quant_linear_agreement(device: str) -> dict:
    """Max |y_device − y_cpu| of one QuantLinear per activation mode, for M = 5 (padded on CUDA) and 300."""
    import copy

    from scalinglab.quant.linear import QuantLinear

    torch.manual_seed(0)
    k, n = 256, 128
    w, b = torch.randn(n, k) / k**0.5, torch.randn(n)
    sw = w.abs().amax(1) / 127
    wq = torch.round(w / sw[:, None]).to(torch.int8)
    extra = {"token": {}, "tensor": {},
             "static": {"act_shift": torch.randn(k) * 0.1, "act_inv_step": torch.full((k,), 127 / 4.0), "act_scale": 4 / 127},
             "llm.int8": {"outlier_cols": torch.tensor([3]), "outlier_w": w[:, [3]], "threshold": 6.0}}
    diffs = {}
    for act, kw in extra.items():
        layer = QuantLinear.from_parts(wq, sw, b, act, 8, 8, **kw)
        on_dev = copy.deepcopy(layer).to(device)
        for m in (5, 300):
            x = torch.randn(m, k)
            x[:, 3] *= 12
            diffs[f"{act}/M{m}"] = float((on_dev(x.to(device)).cpu() - layer(x)).abs().max())
    return diffs


def section_ladder(device: str, small: bool, work: Path) -> dict:
    from scalinglab.fitting.api import fit
    from scalinglab.ladder.demo import CORPUS, SIZES, TOKENS
    from scalinglab.ladder.executors import run_ladder
    from scalinglab.ladder.spec import parse_spec
    from scalinglab.runs.store import RunStore, load_run_table

    raw = {"name": "gpu-check", "corpus": CORPUS["synthetic"], "model": {"seq_len": 64},
           "sizes": SIZES[:2] if small else SIZES, "tokens": [2e4, 6e4] if small else TOKENS["demo"],
           "train": {"lr": 1e-2, "schedule": "cosine", "batch_size": 32, "warmup_frac": 0.05, "n_evals": 6},
           "device": device, "gpus_per_job": 0.25}
    spec = parse_spec(raw, "gpu_check ladder")
    store = work / "ladder.db"
    t0 = time.perf_counter()
    summary = run_ladder(spec, store, workers=2 if device == "cpu" else None)
    wall = time.perf_counter() - t0
    out = {"jobs": len(spec.jobs), "done": len(summary.done), "failed": summary.failed, "wall_s": round(wall, 1)}
    finals = load_run_table(store, final_only=True)
    out["final_loss"] = {r: round(float(x), 4) for r, x in zip(finals["run"], finals["loss"], strict=True)}
    with RunStore(store) as st:
        rows = [st.get(r) for r in finals["run"]]
    out["model_dirs"] = {r["run"]: r["model_dir"] for r in rows}
    if len(finals) >= 5:
        res = fit(store, "chinchilla")
        floor = float(finals["floor"].iloc[0])
        out["fit"] = {k: round(v, 4) for k, v in res.params.items()}
        out["floor"] = round(floor, 4)
        out["E_relative_error"] = round(res.params["E"] / floor - 1, 4)
    return out


def section_compile(device: str, small: bool) -> dict:
    from scalinglab.ladder.device import autocast
    from scalinglab.ladder.model import GPT, GPTConfig

    out = {}
    shapes = dict(list(COMPILE_SHAPES.items())[:1]) if small else COMPILE_SHAPES
    for name, (fields, batch) in shapes.items():
        cfg = GPTConfig(**fields)
        row = {}
        for mode in ("eager", "compiled") if device == "cuda" else ("eager",):
            torch.manual_seed(0)
            model = GPT(cfg).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
            if mode == "compiled":
                model.compile()
            x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)

            def step(model=model, opt=opt, x=x):
                with autocast(device, True):
                    _, loss = model(x, x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            t = time.perf_counter()
            step()
            if device == "cuda":
                torch.cuda.synchronize()
            first = time.perf_counter() - t
            per_step = timed(step, device, reps=10 if small else 50)
            row[mode] = {"ms_per_step": round(per_step * 1e3, 3), "first_step_s": round(first, 2),
                         "tokens_per_s": round(batch * cfg.seq_len / per_step)}
        if "compiled" in row:
            e, c = row["eager"], row["compiled"]
            saving = (e["ms_per_step"] - c["ms_per_step"]) / 1e3
            cost = c["first_step_s"] - e["first_step_s"]
            row["speedup"] = round(e["ms_per_step"] / c["ms_per_step"], 3)
            row["compile_s"] = round(cost, 1)
            row["break_even_steps"] = round(cost / saving) if saving > 0 else None
        out[name] = row
    return out


def _best_model(ladder: dict) -> Path:
    """The checkpoint of the run with the lowest final validation loss (the largest model × budget)."""
    run = min(ladder["final_loss"], key=ladder["final_loss"].get)
    return Path(ladder["model_dirs"][run])


def section_quant(device: str, small: bool, ladder: dict) -> dict:
    import copy

    from scalinglab.ladder.data import CorpusConfig, load_corpus
    from scalinglab.ladder.demo import CORPUS
    from scalinglab.quant.apply import quantize_
    from scalinglab.quant.evaluate import perplexity
    from scalinglab.quant.methods.llm_int8 import LLMInt8Config
    from scalinglab.quant.methods.rtn import RTNConfig
    from scalinglab.quant.models import forward_logits, load_float_model

    model_dir = _best_model(ladder)
    corpus = load_corpus(CorpusConfig.from_dict(CORPUS["synthetic"]))
    ids = [x for x, _ in corpus.val_batches(64, 32, 64 if small else 256)]
    calib = ids[:2]
    base = load_float_model(model_dir).eval()
    out = {"model": str(model_dir.parent.name)}

    def ppl(model, dev):
        return round(perplexity(model.to(dev), ids)[0], 4)

    out["fp32_cpu"] = ppl(copy.deepcopy(base), "cpu")
    out[f"fp32_{device}"] = ppl(copy.deepcopy(base), device)
    out[f"bf16_{device}"] = ppl(copy.deepcopy(base).to(torch.bfloat16), device)
    for label, cfg in (("w8a8", RTNConfig()), ("llm.int8", LLMInt8Config())):
        q = copy.deepcopy(base)
        quantize_(q, cfg, calib=calib, forward=forward_logits)
        out[f"{label}_cpu"] = ppl(q, "cpu")
        out[f"{label}_{device}"] = ppl(q, device)
    return out


def _int8_layer(d: int, device: str, g):
    from scalinglab.quant.linear import QuantLinear

    w = torch.randn(d, d, device=device, generator=g) / d**0.5
    sw = w.abs().amax(1) / 127
    wq = torch.round(w / sw[:, None]).to(torch.int8)
    return w, QuantLinear.from_parts(wq.cpu(), sw.cpu(), torch.zeros(d), "token", 8, 8)


def section_gemm(device: str, small: bool) -> dict:
    """bf16 F.linear vs QuantLinear (K-major weight and the CPU's N-major one; fused and eager) vs bare _int_mm."""
    import copy

    from scalinglab.kernels import int8_torch as KT

    dims, ms = ((256,), (8, 64)) if small else (GEMM_DIMS, GEMM_MS)
    rows = []
    for d in dims:
        g = torch.Generator(device=device).manual_seed(d)
        w, layer = _int8_layer(d, device, g)
        w16 = w.to(torch.bfloat16)
        KT.K_MAJOR_ON_CUDA = False
        n_major = copy.deepcopy(layer).to(device)
        KT.K_MAJOR_ON_CUDA = True
        ql = copy.deepcopy(layer).to(device)
        w_nmajor = n_major.w_t  # (K, N), N fastest: the CPU layout
        w_kmajor = w_nmajor.t().contiguous().t()  # (K, N), K fastest
        for m in ms:
            x = torch.randn(m, d, device=device, generator=g)
            x16 = x.to(torch.bfloat16)
            xq = torch.randint(-127, 128, (m, d), device=device, dtype=torch.int8, generator=g)
            row = {"d": d, "M": m}
            row["bf16_ms"] = timed(lambda x16=x16, w16=w16: F.linear(x16, w16), device) * 1e3
            row["int_mm_nmajor_ms"] = timed(lambda xq=xq, w=w_nmajor: KT.int_mm(xq, w), device) * 1e3
            row["int_mm_kmajor_ms"] = timed(lambda xq=xq, w=w_kmajor: KT.int_mm(xq, w), device) * 1e3
            row["int8_fused_ms"] = timed(lambda x=x, ql=ql: ql(x), device) * 1e3
            KT.FUSE = False
            row["int8_eager_ms"] = timed(lambda x=x, ql=ql: ql(x), device) * 1e3
            KT.FUSE, KT.K_MAJOR_ON_CUDA = True, False
            row["int8_fused_nmajor_ms"] = timed(lambda x=x, ql=n_major: ql(x), device) * 1e3
            KT.K_MAJOR_ON_CUDA = True
            ref = F.linear(x.double(), w.double())
            row["int8_rel_err"] = float((ql(x).double() - ref).norm() / ref.norm())
            row["bf16_rel_err"] = float((F.linear(x16, w16).double() - ref).norm() / ref.norm())
            row["speedup_int8_vs_bf16"] = row["bf16_ms"] / row["int8_fused_ms"]
            row["speedup_int_mm_kmajor_vs_bf16"] = row["bf16_ms"] / row["int_mm_kmajor_ms"]
            rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            print("  d={d:5d} M={M:6d}  bf16 {bf16_ms:8.4f} ms | _int_mm K-major {int_mm_kmajor_ms:8.4f} N-major "
                  "{int_mm_nmajor_ms:8.4f} | QuantLinear fused {int8_fused_ms:8.4f} eager {int8_eager_ms:8.4f} "
                  "N-major {int8_fused_nmajor_ms:8.4f} | int8/bf16 ×{speedup_int8_vs_bf16:.2f} "
                  "(GEMM only ×{speedup_int_mm_kmajor_vs_bf16:.2f}) | rel err int8 {int8_rel_err:.4f} "
                  "bf16 {bf16_rel_err:.4f}".format(**rows[-1]), flush=True)
    return {"rows": rows}


def _linear_int8(xq, w_t, sx, sw, b):
    return torch._int_mm(xq, w_t).float() * (sx[:, None] * sw) + b


def _autotune_row(d: int, m: int, device: str) -> dict:
    from scalinglab.kernels import int8_torch as KT

    g = torch.Generator(device=device).manual_seed(d)
    w, layer = _int8_layer(d, device, g)
    ql = layer.to(device)
    args = (*KT.quantize_rows(torch.randn(m, d, device=device, generator=g), 127), ql.w_scale, ql.bias)
    xq, sx, sw, b = args
    w_t = KT.gemm_weight(ql)
    tuned = torch.compile(_linear_int8, mode="max-autotune-no-cudagraphs", dynamic=False)
    t = time.perf_counter()
    y = tuned(xq, w_t, sx, sw, b)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t
    w16, x16 = w.to(torch.bfloat16), torch.randn(m, d, device=device, generator=g).to(torch.bfloat16)
    row = {"d": d, "M": m, "compile_s": round(compile_s, 1),
           "max_abs_diff": float((y - _linear_int8(xq, w_t, sx, sw, b)).abs().max()),
           "bf16_ms": timed(lambda: F.linear(x16, w16), device) * 1e3,
           "int_mm_plus_epilogue_ms": timed(lambda: _linear_int8(xq, w_t, sx, sw, b), device) * 1e3,
           "autotuned_ms": timed(lambda: tuned(xq, w_t, sx, sw, b), device) * 1e3}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def section_autotune(device: str, small: bool) -> dict:
    """Inductor max-autotune on the whole int8 linear (Triton int8 GEMM templates with the dequant epilogue
    fused, against cuBLAS): is there a faster CUDA int8 path than torch._int_mm + a separate epilogue?"""
    if device != "cuda":
        return {"skipped": "CUDA only"}
    rows = []
    for d, m in ((4096, 4096), (8192, 16384)):
        rows.append(_autotune_row(d, m, device))
        print(f"  {rows[-1]}", flush=True)
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU with tiny sizes (tests the script)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")), help="where gpu_check.json goes")
    ap.add_argument("--budget-s", type=float, default=300.0, help="skip sections that would start after this")
    ap.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    args = ap.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU; use --cpu for a dry run", file=sys.stderr)
        return 2
    device = "cpu" if args.cpu else "cuda"
    small = args.cpu
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_check.json"
    res: dict = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "sections": {}}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        res["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                      "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count}
    print(json.dumps({k: v for k, v in res.items() if k != "sections"}))
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    t_start = time.perf_counter()
    sections = {
        "dispatch": lambda: section_dispatch(device, small),
        "gemm": lambda: section_gemm(device, small),
        "ladder": lambda: section_ladder(device, small, work),
        "quant": lambda: section_quant(device, small, res["sections"]["ladder"]),
        "compile": lambda: section_compile(device, small),
        "autotune": lambda: section_autotune(device, small),
    }
    only = {s for s in args.only.split(",") if s}
    for name, fn in sections.items():
        if only and name not in only:
            continue
        if time.perf_counter() - t_start > args.budget_s:
            res["sections"][name] = {"skipped": f"time budget {args.budget_s:g}s spent"}
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            res["sections"][name] = fn()
        except Exception as exc:  # keep going: the other sections' figures are still worth having
            res["sections"][name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        res["sections"][name]["section_s"] = round(time.perf_counter() - t0, 1)
        shown = {k: v for k, v in res["sections"][name].items() if k not in ("rows", "model_dirs", "trace")}
        print(json.dumps(shown, indent=1), flush=True)
        if "trace" in res["sections"][name]:
            print(res["sections"][name]["trace"], flush=True)
        path.write_text(json.dumps(res, indent=1))
    res["total_s"] = round(time.perf_counter() - t_start, 1)
    path.write_text(json.dumps(res, indent=1))
    print(f"wrote {path} ({res['total_s']}s)")
    failed = [n for n, s in res["sections"].items() if "error" in s]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
