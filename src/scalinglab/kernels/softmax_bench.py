"""Softmax and cross-entropy benchmark: our four algorithms against scipy, NumPy and torch, one run.

For each shape (rows, n) it times, on the same float32 input: our two-pass, online,
three-pass-reload and three-pass-recompute kernels, ``scipy.special.softmax``, NumPy
``exp(x − max) / sum`` and ``torch.softmax``; and, in the same run, the machine's copy bandwidth
(STREAM "copy": y[:] = x over 2·bytes, the better of NumPy single-thread and a numba parallel loop).

Columns: elements/s; *eff GB/s* = 2·bytes(x)/t (one read and one write, the copy's convention, fair
to every method); *traffic GB/s* = the algorithm's own memory passes·bytes(x)/t (two-pass 3,
online 3, recompute 4, reload 5), the figure to hold against copy bandwidth (the *%copy* column).
Times are medians over repeats (each repeat ≥ ~2 ms of calls).

The cross-entropy table times ``scalinglab.kernels.cross_entropy`` against
``torch.nn.functional.cross_entropy`` on (N, V) float32 logits, the shapes evaluation sees.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QUICK_SHAPES = ((1, 1_000), (1, 100_000), (1, 1_000_000), (1024, 1_000), (64, 32_000))
FULL_SHAPES = (
    (1, 1_000),
    (1, 10_000),
    (1, 100_000),
    (1, 1_000_000),
    (1, 10_000_000),
    (4096, 1_000),
    (256, 32_000),
    (64, 262_144),
)
QUICK_CE = ((512, 256), (512, 32_000), (2048, 50_257))
FULL_CE = tuple((n, v) for n in (512, 2048, 8192) for v in (256, 2048, 32_000, 50_257) if n * v <= 1.1e8)
TRAFFIC = {"two-pass": 3, "online": 3, "three-pass-recompute": 4, "three-pass-reload": 5}
SAMPLE_SECONDS = 2e-3  # a repeat loops calls until it spans this, so µs-sized calls are timed fairly


@dataclass(frozen=True)
class Row:
    shape: tuple[int, int]
    method: str
    seconds: float  # median per call
    elements_per_s: float
    eff_gbs: float
    traffic_gbs: float | None


def median_seconds(fn: Callable[[], object], reps: int) -> float:
    """Median time per call over ``reps`` repeats, each looping enough calls to span SAMPLE_SECONDS."""
    fn()
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    inner = max(1, int(SAMPLE_SECONDS / once))
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return statistics.median(samples)


def copy_bandwidth(n_bytes: int = 1 << 28, reps: int = 5) -> float:
    """STREAM-style copy bandwidth in GB/s (2·bytes per copy): best of NumPy and a 2-thread numba loop."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def parallel_copy(src, dst):
        for i in prange(src.size):
            dst[i] = src[i]

    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    t_np = median_seconds(lambda: np.copyto(dst, src), reps)
    t_nb = median_seconds(lambda: parallel_copy(src, dst), reps)
    return 2 * src.nbytes / min(t_np, t_nb) / 1e9


def _methods(x: np.ndarray) -> dict[str, Callable[[], object]]:
    import scipy.special
    import torch

    from scalinglab.kernels.softmax_api import ALGORITHMS, softmax

    xt = torch.from_numpy(x)

    def numpy_softmax():
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e

    methods: dict[str, Callable[[], object]] = {a: (lambda a=a: softmax(x, algorithm=a)) for a in ALGORITHMS}
    methods["scipy.special.softmax"] = lambda: scipy.special.softmax(x, axis=-1)
    methods["numpy exp/sum"] = numpy_softmax
    methods["torch.softmax"] = lambda: torch.softmax(xt, -1)
    return methods


def run_softmax(shapes=FULL_SHAPES, reps: int = 7, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        for name, fn in _methods(x).items():
            t = median_seconds(fn, reps)
            traffic = TRAFFIC.get(name)
            rows.append(
                Row(shape, name, t, x.size / t, 2 * x.nbytes / t / 1e9, traffic * x.nbytes / t / 1e9 if traffic else None)
            )
    return rows


def run_cross_entropy(shapes=FULL_CE, reps: int = 5, seed: int = 0) -> list[tuple[tuple[int, int], float, float]]:
    """(shape, our seconds, torch seconds) per (N, V), mean reduction, float32 logits, int64 targets."""
    import torch

    from scalinglab.kernels.softmax_api import cross_entropy

    g = torch.Generator().manual_seed(seed)
    out = []
    for n, v in shapes:
        logits = torch.randn(n, v, generator=g) * 4
        targets = torch.randint(0, v, (n,), generator=g)
        ours = median_seconds(lambda lg=logits, tg=targets: cross_entropy(lg, tg), reps)
        theirs = median_seconds(lambda lg=logits, tg=targets: torch.nn.functional.cross_entropy(lg, tg), reps)
        out.append(((n, v), ours, theirs))
    return out


def format_softmax(rows: list[Row], copy_gbs: float) -> str:
    lines = [f"copy bandwidth (STREAM copy, 2·bytes/t, same run): {copy_gbs:.1f} GB/s", ""]
    header = f"{'shape':>14} {'method':<22} {'time':>10} {'Gelem/s':>8} {'eff GB/s':>9} {'traffic GB/s':>13} {'%copy':>6}"
    for shape in dict.fromkeys(r.shape for r in rows):
        group = [r for r in rows if r.shape == shape]
        lines.append(header)
        for r in group:
            traffic = f"{r.traffic_gbs:13.1f}" if r.traffic_gbs else f"{'':>13}"
            pct = f"{100 * r.traffic_gbs / copy_gbs:5.0f}%" if r.traffic_gbs else f"{'':>6}"
            shape_s = f"{shape[0]}×{shape[1]}"
            lines.append(
                f"{shape_s:>14} {r.method:<22} {r.seconds * 1e3:8.3f}ms {r.elements_per_s / 1e9:8.2f} {r.eff_gbs:9.1f} {traffic} {pct}"
            )
        by = {r.method: r.seconds for r in group}
        two = by["two-pass"]
        lines.append(
            f"{'':>14} two-pass speed-up: ×{by['three-pass-reload'] / two:.2f} vs three-pass-reload, "
            f"×{by['three-pass-recompute'] / two:.2f} vs recompute, ×{by['online'] / two:.2f} vs online, "
            f"×{by['scipy.special.softmax'] / two:.2f} vs scipy, ×{by['numpy exp/sum'] / two:.2f} vs numpy, "
            f"×{by['torch.softmax'] / two:.2f} vs torch"
        )
        lines.append("")
    return "\n".join(lines)


def format_cross_entropy(results) -> str:
    lines = [
        "cross-entropy, float32 logits (N, V), mean: scalinglab.kernels.cross_entropy vs torch.nn.functional.cross_entropy",
        f"{'N':>6} {'V':>7} {'ours':>10} {'torch':>10} {'speed-up':>9}",
    ]
    for (n, v), ours, theirs in results:
        lines.append(f"{n:>6} {v:>7} {ours * 1e3:8.3f}ms {theirs * 1e3:8.3f}ms {theirs / ours:8.2f}×")
    return "\n".join(lines)


def run_all(quick: bool = False, reps: int = 7, cross_entropy: bool = True, threads: int | None = None) -> str:
    """The whole benchmark as printable text (``scalinglab bench softmax``, ``benchmarks/softmax.py``).

    ``threads`` sets numba's and torch's thread counts alike (default: all cores).
    """
    import numba
    import torch

    if threads:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
    copy_gbs = copy_bandwidth(1 << 26 if quick else 1 << 28, reps=5)
    parts = [
        f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; float32; medians of {reps} repeats",
        format_softmax(run_softmax(QUICK_SHAPES if quick else FULL_SHAPES, reps=reps), copy_gbs),
    ]
    if cross_entropy:
        parts.append(format_cross_entropy(run_cross_entropy(QUICK_CE if quick else FULL_CE, reps=max(3, reps // 2))))
    return "\n".join(parts)
