"""Softmax benchmark: row lengths 1e3…1e7 and batch shapes, one run.

    flock /tmp/scalinglab-cpu.lock python benchmarks/softmax.py          # full table (~20 s)
    python benchmarks/softmax.py --quick                                 # smaller shapes

Prints, per shape, our two-pass, online, three-pass-reload and three-pass-recompute against
scipy.special.softmax, NumPy exp/sum and torch.softmax (elements/s, GB/s, % of the copy bandwidth
measured in the same run), then cross-entropy against torch at evaluation shapes. Same table as
``scalinglab bench softmax``; see scalinglab/kernels/softmax_bench.py for the conventions.
"""

from __future__ import annotations

import argparse

from scalinglab.kernels.softmax_bench import run_all

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
    parser.add_argument("--reps", type=int, default=7, help="repeats per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="numba and torch threads (default: all cores)")
    parser.add_argument("--no-cross-entropy", action="store_true", help="skip the cross-entropy table")
    args = parser.parse_args()
    print(run_all(quick=args.quick, reps=args.reps, cross_entropy=not args.no_cross_entropy, threads=args.threads))
