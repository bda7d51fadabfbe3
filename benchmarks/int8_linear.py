"""Int8 linear layers against fp32 and bf16 on this CPU. Run:

    flock /tmp/scalinglab-cpu.lock python benchmarks/int8_linear.py [--quick] [--threads N]

Same as `scalinglab bench int8`. Peers join the run when importable:
`pip install --no-deps torchao bitsandbytes` (never let pip touch torch).
"""

from __future__ import annotations

import argparse

from scalinglab.quant.bench import run_int8_bench

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    run_int8_bench(quick=args.quick, threads=args.threads)
