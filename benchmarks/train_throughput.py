"""Training throughput: our trainer vs a minimal PyTorch GPT loop (same shapes, same precision), fp32 vs
bf16 vs ``precision: auto``, and achieved FLOP/s as a fraction of the measured matmul peak. One run
prints everything.

    flock /tmp/scalinglab-cpu.lock python benchmarks/train_throughput.py --seconds 10
    flock /tmp/scalinglab-cpu.lock python benchmarks/train_throughput.py --quick [--emulate-avx2]

``--quick``: 2 timed seconds per shape and precision, 2 repeats (a couple of minutes in all).
``--emulate-avx2`` reruns the same command with torch, oneDNN, fbgemm and numba capped at AVX2.
"""

import argparse
import sys

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per shape and precision")
    parser.add_argument("--repeats", type=int, default=3, help="alternating ref/ours runs; best of each kept")
    parser.add_argument("--shapes", nargs="+", default=None, help="shapes to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="--seconds 2 --repeats 2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--emulate-avx2", action="store_true", help="run as on an AVX2-only CPU")
    args = parser.parse_args()
    if args.emulate_avx2:
        from scalinglab.hw.emulate import reexec

        reexec([a for a in sys.argv if a != "--emulate-avx2"])
    import torch

    from scalinglab.ladder.bench import SHAPES, main

    if args.threads:
        torch.set_num_threads(args.threads)

    shapes = tuple(args.shapes or SHAPES)
    if unknown := [s for s in shapes if s not in SHAPES]:
        parser.error(f"unknown shapes {unknown}; choose from {list(SHAPES)}")
    seconds, repeats = (2.0, 2) if args.quick else (args.seconds, args.repeats)
    main(seconds=seconds, repeats=repeats, shapes=shapes)
