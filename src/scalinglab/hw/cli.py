"""`scalinglab doctor`: this machine's capabilities, measured GEMM speeds and the choices they imply.

    scalinglab doctor
    scalinglab doctor --recalibrate --json

torch is imported inside the command, so `scalinglab --help` stays fast.
"""

from __future__ import annotations

import json

import typer

__all__ = ["doctor_cmd", "register", "doctor_report", "format_report"]


def doctor_report(recalibrate: bool = False) -> dict:
    """Everything the doctor shows, as one JSON-ready dict."""
    from scalinglab.hw import calibrate as C
    from scalinglab.hw import dispatch as D
    from scalinglab.hw.capabilities import detect

    caps = detect()
    cal = D.calibration(recalibrate=recalibrate)
    plan = D.choose_int8_path(cal)
    width = D.bf16_min_width(cal)
    gflops = {name: [None if t is None else 2 * m * C.GEMM_D**2 / t / 1e6 for m, t in zip(C.GEMM_MS, ms, strict=True)]
              for name, ms in {"fp32": cal.gemm_fp32_ms, "bf16": cal.gemm_bf16_ms, **cal.int8_ms}.items()}
    big = len(C.GEMM_MS) - 1
    bf16_big = cal.gemm_bf16_ms[big]
    float_default = "bf16" if bf16_big is not None and bf16_big < cal.gemm_fp32_ms[big] else "fp32"
    return {
        "capabilities": caps.to_dict(),
        "cache_path": str(C.cache_path(caps)),
        "calibration": cal.to_dict(),
        "gflops": gflops,
        "choices": {
            "int8_paths": dict(zip(D.BUCKET_NAMES, plan.paths, strict=True)),
            "int8_activation_bits": {name: plan.activation_bits(p) for name, p in zip(D.BUCKET_NAMES, plan.paths, strict=True)},
            "int8_reason": plan.reason,
            "auto_bf16_min_width": width,
            "float_default": float_default,
            "cross_entropy_kernel_min_elements": dict(zip(map(str, C.CE_VOCABS), D.ce_min_elements(cal), strict=True)),
            "weight_only_bf16": _weight_only_bf16(),
        },
    }


def _weight_only_bf16() -> dict:
    """Which kernels weight-only layers with bf16 activations run on here (compiles and self-checks the bf16
    dot-product kernel when the CPU has AVX-512 BF16)."""
    from scalinglab.kernels import wo_bf16, wo_torch
    from scalinglab.quant.weight_only import BYTE_BF16_MAX_M, TORCH_INT4_MAX_M

    kernel = {str(bits): wo_bf16.available(bits) for bits in (4, 8)}
    w4 = ("bf16 dot-product kernel, every M" if kernel["4"] else
          f"torch int4 kernel up to M = {TORCH_INT4_MAX_M}, numba kernels above" if wo_torch.available()
          else "numba kernels")
    w8 = f"bf16 dot-product kernel up to M = {BYTE_BF16_MAX_M}, numba kernels above" if kernel["8"] else "numba kernels"
    return {"kernel_available": kernel, "W4": w4, "W8/W6": w8}


def format_report(r: dict) -> str:
    caps, cal, ch = r["capabilities"], r["calibration"], r["choices"]
    capped = sorted(set(caps["cpu_flags"]) - set(caps["flags"]))
    env = " ".join(f"{k}={v}" for k, v in caps["env"].items())
    lines = [
        f"CPU            {caps['cpu_model']} ({caps['arch']}); torch threads: {caps['threads']}",
        f"instructions   {caps['isa']}: {' '.join(caps['flags']) or '-'}"
        + (f"  (present but capped: {' '.join(capped)})" if capped else ""),
        f"torch          {caps['torch_version']}, kernels {caps['torch_capability']}; quantized engines: "
        f"{', '.join(caps['quantized_engines'])}",
        f"CUDA           {', '.join(caps['cuda_devices']) if caps['cuda'] else 'none'}",
        f"environment    {env or '(no caps set)'}",
        f"calibration    {r['cache_path']}  ({cal['cpu_seconds']:.2f} s CPU / {cal['seconds']:.2f} s wall to measure, load {cal['load']:.1f} per core"
        + ("; other processes competed, run --recalibrate when the machine is quiet)" if cal["load"] > 1 else ")"),
        "",
        f"d = {cal['gemm_d']} linear, one thread, CPU ms per call (GFLOP/s):",
    ]
    names = list(r["gflops"])
    lines.append(f"{'M':>6} " + " ".join(f"{n:>17}" for n in names))
    ms_of = {"fp32": cal["gemm_fp32_ms"], "bf16": cal["gemm_bf16_ms"], **cal["int8_ms"]}
    for i, m in enumerate(cal["gemm_ms"]):
        cells = []
        for n in names:
            t, g = ms_of[n][i], r["gflops"][n][i]
            cells.append(f"{'skipped':>17}" if t is None else f"{t:8.3f} ({g:6.1f})")
        lines.append(f"{m:>6} " + " ".join(cells))
    lines += ["", "training probe (fwd+bwd, 256 tokens, one thread), CPU ms: width fp32 bf16 bf16-speedup"]
    for w, f, b in zip(cal["train_widths"], cal["train_fp32_ms"], cal["train_bf16_ms"], strict=True):
        lines.append(f"{w:>6} {f:9.3f} " + ("  skipped" if b is None else f"{b:9.3f} {f / b:6.2f}×"))
    lines += ["", "cross-entropy probe (float32 logits, one thread), CPU ms: N V kernel torch torch/kernel"]
    for (n, v), k, t in zip(cal["ce_shapes"], cal["ce_kernel_ms"], cal["ce_torch_ms"], strict=True):
        lines.append(f"{n:>6} {v:>6} {k:9.3f} {t:9.3f} {t / k:6.2f}×")
    ce = ", ".join(f"V≥{v}: " + (f"N·V ≥ {e:,}" if e is not None else "never") for v, e in
                   ch["cross_entropy_kernel_min_elements"].items())
    width = ch["auto_bf16_min_width"]
    paths = ", ".join(f"{b} {p} ({ch['int8_activation_bits'][b]}-bit)" for b, p in ch["int8_paths"].items())
    lines += [
        "",
        f"int8 linears   {paths}",
        f"               {ch['int8_reason']}",
        "precision auto " + (f"bf16 from d_model ≥ {width}, fp32 below" if width else "fp32 at every width"),
        f"float default  {ch['float_default']} (faster of the two at M = {cal['gemm_ms'][-1]})",
        f"cross-entropy  our kernel where {ce} (torch below V = {cal['ce_shapes'][0][1]})",
        f"weight-only    bf16 activations: W4 on the {ch['weight_only_bf16']['W4']}; "
        f"W8/W6 on the {ch['weight_only_bf16']['W8/W6']}",
    ]
    return "\n".join(lines)


def doctor_cmd(
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Measure again and overwrite the cached numbers."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """This machine: CPU capabilities, measured fp32/bf16/int8 speeds, the backends chosen, the cache file.

    The first call measures (under 2 s on an idle machine) and caches the numbers under
    $XDG_CACHE_HOME/scalinglab (default ~/.cache/scalinglab); later calls read the cache.

    Examples:

        scalinglab doctor

        ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 scalinglab doctor
    """
    from scalinglab.extras import is_installed

    if not is_installed("torch"):  # the core install: the CPU is known, the speeds need torch to measure
        report = cpu_only_report()
        print(json.dumps(report, indent=1) if as_json else format_cpu_only(report))
        return
    report = doctor_report(recalibrate=recalibrate)
    print(json.dumps(report, indent=1) if as_json else format_report(report))


def cpu_only_report() -> dict:
    """What a machine without torch can tell: the CPU and its instruction sets (no measurements, no choices)."""
    import os
    import platform

    from scalinglab.hw.capabilities import ENV_OVERRIDES, RELEVANT_FLAGS, _cpuinfo, effective_flags

    model, cpu_flags = _cpuinfo()
    env = {k: os.environ[k] for k in ENV_OVERRIDES if os.environ.get(k)}
    return {"capabilities": {"cpu_model": model, "arch": platform.machine(), "torch_version": None,
                             "cpu_flags": [f for f in RELEVANT_FLAGS if f in cpu_flags],
                             "flags": list(effective_flags(cpu_flags, env, "")), "env": env},
            "missing": "torch: measured speeds and the int8/bf16 choices need the [quant] extra: "
                       "pip install 'scalinglab[quant]'"}


def format_cpu_only(r: dict) -> str:
    caps = r["capabilities"]
    env = " ".join(f"{k}={v}" for k, v in caps["env"].items())
    return "\n".join([f"CPU            {caps['cpu_model']} ({caps['arch']})",
                      f"instructions   {' '.join(caps['flags']) or '-'}",
                      f"environment    {env or '(no caps set)'}",
                      f"not measured   {r['missing']}"])


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
