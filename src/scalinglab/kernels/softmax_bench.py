"""Softmax and cross-entropy benchmark: our four algorithms against scipy, NumPy and torch, one run.

For each shape (rows, n) it times, on the same float32 input: our two-pass, online,
three-pass-reload and three-pass-recompute kernels, ``scipy.special.softmax``, NumPy
``exp(x − max) / sum`` and ``torch.softmax``; and, in the same run, the machine's copy bandwidth
(STREAM "copy": y[:] = x over 2·bytes, the better of NumPy single-thread and a numba parallel loop).

Output buffers. Our kernels, NumPy and torch write into an output preallocated once per shape and
touched beforehand (``out=``), so the timings are of the algorithms, not of the kernel's page faults
on a fresh 40 MB buffer (which cost as much as the softmax itself at 1e7). ``scipy.special.softmax``
has no ``out`` argument and always allocates. The rows marked ``+alloc`` (our two-pass and torch)
time the allocating call ``softmax(x)`` / ``torch.softmax(x, -1)`` for comparison.

Columns: elements/s; *eff GB/s* = 2·bytes(x)/t (one read and one write, the copy's convention, fair
to every method); *traffic GB/s* = the algorithm's own memory passes·bytes(x)/t (two-pass 3,
online 3, recompute 4, reload 5), the figure to hold against copy bandwidth (the *%copy* column).
Each shape is labelled by where it lives against the caches read from sysfs: a row whose input plus
output exceeds the L3 is *out of cache* (every pass streams from memory, bar what a pass finds left in
the L3 by the pass before it).

Times are medians over repeats; the methods of a shape are sampled round-robin (each repeat times
every method once, ≥ ~2 ms of calls each), so load from other jobs on a shared machine falls on all
of them alike rather than on whichever method was running at the time. The order is shuffled
afresh for every repeat (seeded, so runs are reproducible). Shapes whose x and y together exceed the
L3 start every sample from cold caches: an untimed read-and-write of a buffer twice the L3 runs first.
Without it, what ran just before a method decides part of its time: a method whose first pass starts
where its predecessor's last pass ended re-reads part of the row from the L3 (at 1e7 elements the
two-pass time then spread from 3.1 to 4.3 ms over 41 repeats; evicted, 3.3 to 4.3 with the median
0.45 ms lower for two-pass and unchanged for three-pass-reload), and torch's OpenMP threads keep
spinning for a while after a call, which now overlaps the eviction instead of the next method.

The cross-entropy table times ``scalinglab.kernels.cross_entropy`` against
``torch.nn.functional.cross_entropy`` on (N, V) float32 logits, the shapes evaluation sees.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scalinglab.kernels.softmax_driver import cache_sizes

QUICK_SHAPES = ((1, 1_000), (1, 100_000), (1, 1_000_000), (1024, 1_000), (64, 32_000))
FULL_SHAPES = (
    (1, 1_000),
    (1, 10_000),
    (1, 100_000),
    (1, 1_000_000),
    (1, 10_000_000),
    (1, 30_000_000),
    (4096, 1_000),
    (256, 32_000),
    (64, 262_144),
)
QUICK_CE = ((512, 256), (512, 32_000), (2048, 50_257))
FULL_CE = tuple((n, v) for n in (512, 2048, 8192) for v in (256, 2048, 32_000, 50_257) if n * v <= 1.1e8)
TRAFFIC = {"two-pass": 3, "online": 3, "three-pass-recompute": 4, "three-pass-reload": 5, "two-pass +alloc": 3}
COLD_REPS_FACTOR = 3  # repeats multiplier for shapes whose x + y exceed the L3
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
    return round_robin_seconds({"fn": fn}, reps)["fn"]


def _calls_per_sample(fn: Callable[[], object]) -> int:
    """Calls per sample so that one sample spans SAMPLE_SECONDS (after a warm-up call)."""
    fn()
    t = time.perf_counter()
    fn()
    return max(1, int(SAMPLE_SECONDS / max(time.perf_counter() - t, 1e-7)))


def round_robin_seconds(
    fns: dict[str, Callable[[], object]], reps: int, seed: int = 0, before: Callable[[], object] | None = None
) -> dict[str, float]:
    """Median seconds per call of each fn; every repeat samples all fns in turn (fair under shared load),
    in an order shuffled per repeat (seeded) so that no fn always follows the same one. ``before`` runs,
    untimed, ahead of every sample (the cache eviction of out-of-cache shapes)."""
    inner = {name: _calls_per_sample(fn) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(seed).shuffle
    for _ in range(reps):
        shuffle(order)
        for name in order:
            fn = fns[name]
            if before is not None:
                before()
            t = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t) / inner[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def cache_label(shape: tuple[int, int], itemsize: int = 4, caches: dict[str, int] | None = None) -> str:
    """Where a shape's data lives: by the bytes of input + output of one row and of the whole array."""
    caches = cache_sizes() if caches is None else caches
    row, total = 2 * shape[1] * itemsize, 2 * shape[0] * shape[1] * itemsize
    l2, l3 = caches.get("L2"), caches.get("L3")
    if not l2 or not l3:
        return "cache sizes unknown"
    if row > l3:
        return "out of cache (a row's x+y > L3)"
    if total > l3:
        return "rows in L3, array streams from memory"
    return "in L2" if total <= l2 else "in L3"


def cache_evictor(caches: dict[str, int] | None = None) -> Callable[[], None]:
    """A function that pushes every earlier line out of the caches: it reads and writes a buffer of twice
    the L3 (64 MiB when the L3 size is unknown)."""
    caches = cache_sizes() if caches is None else caches
    buf = np.ones(2 * caches.get("L3", 32 << 20) // 4, np.float32)

    def evict() -> None:
        np.add(buf, 1.0, out=buf)

    return evict


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

    y = np.ones_like(x)  # preallocated and already touched: no page faults inside the timed calls
    xt, yt = torch.from_numpy(x), torch.ones(x.shape, dtype=torch.float32)

    def numpy_softmax():
        np.subtract(x, x.max(axis=-1, keepdims=True), out=y)
        np.exp(y, out=y)
        np.divide(y, y.sum(axis=-1, keepdims=True), out=y)
        return y

    methods: dict[str, Callable[[], object]] = {
        a: (lambda a=a: softmax(x, algorithm=a, out=y)) for a in ALGORITHMS
    }
    methods["two-pass +alloc"] = lambda: softmax(x)
    methods["scipy.special.softmax"] = lambda: scipy.special.softmax(x, axis=-1)  # no out=: allocates
    methods["numpy exp/sum"] = numpy_softmax
    methods["torch.softmax"] = lambda: torch.softmax(xt, -1, out=yt)
    methods["torch.softmax +alloc"] = lambda: torch.softmax(xt, -1)
    return methods


def run_softmax(shapes=FULL_SHAPES, reps: int = 7, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    caches = cache_sizes()
    evict = cache_evictor(caches)
    for shape in shapes:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        cold = 2 * x.nbytes > caches.get("L3", 32 << 20)
        # Out-of-cache shapes: one call per sample and a shared memory bus make them the noisiest, so
        # they get COLD_REPS_FACTOR× the repeats (a burst of load from elsewhere then moves fewer medians).
        n_reps = reps * COLD_REPS_FACTOR if cold else reps
        times = round_robin_seconds(_methods(x), n_reps, before=evict if cold else None)
        for name, t in times.items():
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


def format_softmax(rows: list[Row], copy_gbs: float, caches: dict[str, int] | None = None) -> str:
    caches = cache_sizes() if caches is None else caches
    cache_text = ", ".join(f"{k} {v / 2**20:g} MiB" for k, v in sorted(caches.items())) or "unknown"
    lines = [
        f"copy bandwidth (STREAM copy, 2·bytes/t, same run): {copy_gbs:.1f} GB/s; caches (cpu0): {cache_text}",
        "ours, numpy and torch write into a preallocated, pre-touched output; '+alloc' rows and scipy allocate it per call",
        "",
    ]
    header = f"{'shape':>14} {'method':<22} {'time':>10} {'Gelem/s':>8} {'eff GB/s':>9} {'traffic GB/s':>13} {'%copy':>6}"
    for shape in dict.fromkeys(r.shape for r in rows):
        group = [r for r in rows if r.shape == shape]
        mb = 4 * shape[0] * shape[1] / 1e6
        lines.append(f"{shape[0]}×{shape[1]}: x {mb:g} MB float32, {cache_label(shape, 4, caches)}")
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
            f"×{by['torch.softmax'] / two:.2f} vs torch (+alloc both: ×{by['torch.softmax +alloc'] / by['two-pass +alloc']:.2f})"
        )
        lines.append("")
    return "\n".join(lines)


LARGE_ROW = 1_000_000  # rows at least this long count as "large" for the scipy/torch/bandwidth targets


def format_targets(rows: list[Row], copy_gbs: float, caches: dict[str, int] | None = None) -> str:
    """The speed targets, met or not, from this run's rows (two-pass with a preallocated output)."""
    caches = cache_sizes() if caches is None else caches
    by = {(r.shape, r.method): r for r in rows}
    shapes = list(dict.fromkeys(r.shape for r in rows))
    lines = ["targets (two-pass, preallocated output):"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for shape in shapes:
        two = by[(shape, "two-pass")]
        name = f"{shape[0]}×{shape[1]}"
        if cache_label(shape, 4, caches).startswith("out of cache"):
            ratio = by[(shape, "three-pass-reload")].seconds / two.seconds
            lines.append(f"  {name} out of cache: ×{ratio:.2f} vs three-pass-reload (≥ 1.2): {verdict(ratio >= 1.2)}")
        if shape[1] >= LARGE_ROW:
            vs_scipy = by[(shape, "scipy.special.softmax")].seconds / two.seconds
            vs_torch = by[(shape, "torch.softmax")].seconds / two.seconds
            vs_torch_alloc = by[(shape, "torch.softmax +alloc")].seconds / by[(shape, "two-pass +alloc")].seconds
            pct = 100 * two.traffic_gbs / copy_gbs
            lines.append(
                f"  {name}: ×{vs_scipy:.2f} vs scipy (≥ 2): {verdict(vs_scipy >= 2)}; ×{vs_torch:.2f} vs torch "
                f"(≥ 1; both allocating ×{vs_torch_alloc:.2f}): {verdict(vs_torch >= 1)}; "
                f"{two.traffic_gbs:.1f} GB/s = {pct:.0f}% of copy (≥ 70%): {verdict(pct >= 70)}"
            )
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
    rows = run_softmax(QUICK_SHAPES if quick else FULL_SHAPES, reps=reps)
    parts = [
        f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; float32; medians of {reps} repeats ({reps * COLD_REPS_FACTOR} for shapes beyond the L3, each from cold caches)",
        format_softmax(rows, copy_gbs),
        format_targets(rows, copy_gbs),
        "",
    ]
    if cross_entropy:
        parts.append(format_cross_entropy(run_cross_entropy(QUICK_CE if quick else FULL_CE, reps=max(3, reps // 2))))
    return "\n".join(parts)
