"""Int8 linear layers against fp32 and bf16 on this CPU, on the int8 path hw/ chose for it. Run:

    flock /tmp/scalinglab-cpu.lock python benchmarks/int8_linear.py [--quick] [--threads N] [--all-paths]
    flock /tmp/scalinglab-cpu.lock python benchmarks/int8_linear.py --quick --emulate-avx2

Same as `scalinglab bench int8`. ``--all-paths`` adds W8A8 pinned to each int8 path (torch._int_mm,
fbgemm, the fused few-row gemv kernel, dequantized float), to show what the dispatch chose between. ``--emulate-avx2`` reruns the same
command with torch, oneDNN, fbgemm and numba capped at AVX2 (scalinglab.hw.emulate). Peers join the
run when importable: `pip install --no-deps torchao bitsandbytes` (never let pip touch torch).
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d ∈ {768, 1024}, M ∈ {1, 16, 256} (about a minute)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--all-paths", action="store_true", help="also time W8A8 pinned to every int8 path")
    ap.add_argument("--no-peers", action="store_true", help="skip torchao / bitsandbytes even if importable")
    ap.add_argument("--emulate-avx2", action="store_true", help="run as on an AVX2-only CPU")
    args = ap.parse_args()
    if args.emulate_avx2:
        from scalinglab.hw.emulate import reexec

        reexec([a for a in sys.argv if a != "--emulate-avx2"])
    from scalinglab.quant.bench import run_int8_bench

    run_int8_bench(quick=args.quick, threads=args.threads, all_paths=args.all_paths, peers=not args.no_peers)
