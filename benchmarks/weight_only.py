"""Weight-only quantized linears (W4A16, W8A16) against bf16 and fp32 ``F.linear``: memory and speed. Run:

    flock /tmp/scalinglab-cpu.lock python benchmarks/weight_only.py [--quick] [--threads N]
    flock /tmp/scalinglab-cpu.lock python benchmarks/weight_only.py --emulate-avx2

Memory is measured from the tensors each layer holds (codes, float16 steps, uint8 zero points, fp32 bias;
"resident" adds run-time tables). Times are medians of interleaved rounds (every variant once per round,
so load drifts hit all alike); ratios are bf16 time / ours (> 1: faster than bf16). Activations of the
A16 layers are bf16. "W4A16" is the layer as it dispatches (its path is printed: the bf16 dot-product
kernel of kernels/wo_bf16.py on CPUs with AVX-512 BF16, else torch's int4 kernel up to M = 16, else
numba); "W4 int4" pins torch's int4 kernel where it applies (M ≤ 16), "W4 numba" this package's numba
kernels.
``--emulate-avx2`` reruns the same command with torch, oneDNN and numba capped at AVX2.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _medians(fns: dict, rounds: int, budget_s: float) -> dict[str, float]:
    for f in fns.values():  # warm-up: compile, convert layouts, fault pages in
        f()
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                f()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= budget_s:
                    break
            times[name].append(elapsed / n)
    return {k: statistics.median(v) for k, v in times.items()}


def _variants(x, w32, b32, w4, w8, w4t, w4n) -> dict:
    """fp32 and bf16 F.linear, and the weight-only layers on the same input in bf16."""
    import torch.nn.functional as F

    xb, wb, bb = x.bfloat16(), w32.bfloat16(), b32.bfloat16()
    return {"fp32": lambda: F.linear(x, w32, b32), "bf16": lambda: F.linear(xb, wb, bb),
            "w4": lambda: w4(xb), "w8": lambda: w8(xb), "w4t": lambda: w4t(xb), "w4n": lambda: w4n(xb)}


def _path(layer) -> str:
    return {None: "numba", "bf16": "bf16 dp", "torch_int4": "int4"}[layer._runtime and layer._runtime[0]]


def main(quick: bool, threads: int) -> None:
    import numba
    import torch

    from scalinglab.quant.weight_only import WeightOnlyLinear

    if threads:
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.manual_seed(0)
    shapes = [(768, 768), (4096, 1024)] if quick else [(768, 768), (2048, 2048), (4096, 4096), (4096, 1024)]
    ms = [1, 16] if quick else [1, 4, 8, 16, 256]
    rounds, budget = (3, 0.03) if quick else (5, 0.05)
    print(f"# weight-only linears on {_cpu()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numba {numba.__version__} ({numba.get_num_threads()} threads)")
    print("\n## Memory of one linear (weight + bias), measured from the tensors held")
    print(f"{'out × in':>12} {'fp32 MiB':>9} {'bf16 MiB':>9} {'W8 g128':>9} {'W4 g128':>9} {'W4 g32':>9} "
          f"{'fp32/W8':>8} {'fp32/W4':>8} {'fp32/W4 res.':>12} {'fp32/W4g32':>10}")
    layers = {}
    for n, k in shapes:
        lin = torch.nn.Linear(k, n)
        w4 = WeightOnlyLinear.from_linear(lin, 4, 128)
        w8 = WeightOnlyLinear.from_linear(lin, 8, 128)
        w4g32 = WeightOnlyLinear.from_linear(lin, 4, 32)
        fp32 = sum(p.numel() * p.element_size() for p in lin.parameters())
        bf16 = sum(p.numel() * 2 for p in lin.parameters())
        x = torch.randn(1, k).bfloat16()
        w4(x)  # a bf16 kernel (where eligible) builds its layout and tables on the first call
        res4 = w4.weight_bytes() + w4.runtime_bytes()
        mib = 2.0**20
        print(f"{n:>5} × {k:<5} {fp32 / mib:9.2f} {bf16 / mib:9.2f} {w8.weight_bytes() / mib:9.2f} "
              f"{w4.weight_bytes() / mib:9.2f} {w4g32.weight_bytes() / mib:9.2f} {fp32 / w8.weight_bytes():8.2f} "
              f"{fp32 / w4.weight_bytes():8.2f} {fp32 / res4:12.2f} {fp32 / w4g32.weight_bytes():10.2f}")
        layers[(n, k)] = (lin, w4, w8)
    print("(res.: resident while a bf16 kernel runs the layer: + its regrouped step/zero-point table)")
    print("\n## Forward time, median µs (ratio = bf16 time / this; > 1 is faster than bf16)")
    print(f"{'out × in':>12} {'M':>4} {'fp32':>9} {'bf16':>9} {'W4A16':>9} {'path':>8} {'W8A16':>9} {'W4 int4':>9} "
          f"{'W4 numba':>9} {'fp32 ×':>7} {'W4A16 ×':>8} {'W8A16 ×':>8} {'int4 ×':>7} {'W4num ×':>8}")
    decode_ratios = []
    for (n, k), (lin, w4, w8) in layers.items():
        w4t = WeightOnlyLinear.from_linear(lin, 4, 128)
        w4t.use_bf16_kernel = False
        w4n = WeightOnlyLinear.from_linear(lin, 4, 128)
        w4n.use_bf16_kernel = w4n.use_torch_int4 = False
        w32, b32 = lin.weight.detach(), lin.bias.detach()
        for m in ms:
            x = torch.randn(m, k)
            t = _medians(_variants(x, w32, b32, w4, w8, w4t, w4n), rounds, budget)
            us = {key: v * 1e6 for key, v in t.items()}
            r = {key: t["bf16"] / v for key, v in t.items()}
            if m <= 16:
                decode_ratios.append((r["w4"], r["w8"]))
            print(f"{n:>5} × {k:<5} {m:>4} {us['fp32']:9.0f} {us['bf16']:9.0f} {us['w4']:9.0f} {_path(w4):>8} "
                  f"{us['w8']:9.0f} {us['w4t']:9.0f} {us['w4n']:9.0f} {r['fp32']:7.2f} {r['w4']:8.2f} {r['w8']:8.2f} "
                  f"{r['w4t']:7.2f} {r['w4n']:8.2f}", flush=True)
    print()
    for name, worst in zip(("W4A16", "W8A16"), map(min, zip(*decode_ratios, strict=True)), strict=True):
        print(f"{name} at least as fast as bf16 at every M ≤ 16: {'yes' if worst >= 1.0 else 'no'} "
              f"(slowest: {worst:.2f}× bf16)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two shapes, M ∈ {1, 16}")
    ap.add_argument("--threads", type=int, default=0, help="torch and numba threads (0: torch's default)")
    ap.add_argument("--emulate-avx2", action="store_true", help="run as on an AVX2-only CPU")
    args = ap.parse_args()
    if args.emulate_avx2:
        from scalinglab.hw.emulate import reexec

        reexec([a for a in sys.argv if a != "--emulate-avx2"])
    main(args.quick, args.threads)
