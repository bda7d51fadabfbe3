"""Training throughput: our trainer vs a minimal PyTorch GPT loop (same shapes, same precision), fp32 vs
bf16, and achieved FLOP/s as a fraction of the measured matmul peak. One run prints everything.

    flock /tmp/scalinglab-cpu.lock python benchmarks/train_throughput.py --seconds 10
"""

import argparse

from scalinglab.ladder.bench import SHAPES, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per shape and precision")
    parser.add_argument("--repeats", type=int, default=3, help="alternating ref/ours runs; best of each kept")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    main(seconds=args.seconds, repeats=args.repeats, shapes=tuple(args.shapes))
