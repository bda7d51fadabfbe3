"""Micro-calibration: time fp32 / bf16 GEMMs and every int8 linear path at a few shapes (< 2 s), once.

The numbers are the machine's own, taken the first time a decision is needed and cached per machine
under the user's cache directory (``$XDG_CACHE_HOME/scalinglab`` or ``~/.cache/scalinglab``), keyed by
CPU model, effective instruction sets, torch version, thread count and the environment caps (see
capabilities.py). The file is written atomically and validated when read back; a file that fails
validation is ignored and the machine is measured again.

What is timed (best of a few calls each, after a warm-up call):

- ``gemm``: ``F.linear`` of an (M × d) batch through a d × d layer, d = 1024, fp32 and bf16, at one
  size per batch bucket of the dispatch: M = 1 (decode, one token), 16 (small batches), 256 (large);
- ``int8``: the same layer as a W8A8 ``QuantLinear`` (per-token activations) end to end on each int8 path
  that exists here: ``int_mm`` (torch._int_mm), ``fbgemm`` (prepacked dynamic linear), ``gemv`` (our
  fused few-row kernel, kernels/int8_gemv.py; not timed past GEMV_MAX_M rows), ``dequant`` (float
  weights); whether fbgemm is exact at full 8-bit range here, and whether ``torch._int_mm`` is exact at
  all (oneDNN's int8 GEMM without VNNI saturates int16 pairs as fbgemm's does: under
  ``ONEDNN_MAX_CPU_ISA=AVX2`` its results were off by up to 16,000 in the accumulator) — an inexact path
  is not a candidate;
- ``train``: forward + backward of two stacked d × d linears on 256 tokens, fp32 against bf16
  autocast (which also pays the weight casts, as training does), d ∈ {128, 256, 512, 1024};
- ``ce``: our one-read cross-entropy kernel against ``torch.nn.functional.cross_entropy`` on float32
  logits, V ∈ CE_VOCABS at N·V ∈ CE_ELEMENTS (kernels/softmax_dispatch.py derives its thresholds here).

Everything runs on one thread and is timed in process CPU time. The decisions rest on ratios (int8
against fp32, bf16 against fp32), which one thread gives as well as many, and CPU time of one thread
does not count the time the process spends descheduled: on a machine busy with other work, wall-clock
timings of multi-threaded GEMMs were off by up to 100× (a thread waiting at a barrier for its
descheduled sibling) and flipped decisions; these do not. A measurement that is already 8× slower
than fp32 at the smaller size is not repeated at the larger one (recorded as ``None``: on an AVX2-only CPU ``torch._int_mm`` at 256 × 1024² takes most of a second).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scalinglab.hw.capabilities import Capabilities

__all__ = ["Calibration", "measure", "cache_dir", "cache_path", "load_cached", "save", "INT8_PATHS",
           "GEMM_D", "GEMM_MS", "GEMV_MAX_M", "TRAIN_WIDTHS", "CE_VOCABS", "CE_ELEMENTS", "ce_shapes",
           "FORMAT_VERSION"]

FORMAT_VERSION = 2  # 2: batch buckets M = 1/16/256, the gemv path, int_mm exactness, cross-entropy shapes
INT8_PATHS = ("int_mm", "fbgemm", "gemv", "dequant")
GEMM_D = 1024
GEMM_MS = (1, 16, 256)  # one size per batch bucket: decode (M = 1), small (M ≤ 16), large
GEMV_MAX_M = 16  # the few-row kernel re-reads nothing but does M× the work per weight: not a large-M path
CE_VOCABS = (64, 256, 1024, 16384)
CE_ELEMENTS = (1 << 14, 1 << 16, 1 << 18, 1 << 20)  # N·V: 64 KiB to 4 MiB of float32 logits
TRAIN_WIDTHS = (128, 256, 512, 1024)
TRAIN_TOKENS = 256
GIVE_UP_RATIO = 8.0  # slower than fp32 by this much at the smaller size: not worth the larger one
CALL_BUDGET_S = 0.025  # per candidate and size, after its warm-up call (whole calibration < 2 s)
MAX_REPS = 15
CE_BUDGET_S = 0.005  # per cross-entropy candidate and shape (16 shapes)


@dataclass(frozen=True)
class Calibration:
    """Measured milliseconds per call; ``None`` where a path does not exist or was given up on."""

    key: str
    capabilities: dict
    created: float  # unix time
    seconds: float  # wall time the calibration took
    cpu_seconds: float  # process CPU time it took (what an idle machine's wall time would be, about)
    load: float  # 1-minute load average per core when measured (> 1: other processes competed)
    gemm_fp32_ms: tuple[float, ...]  # per GEMM_MS
    gemm_bf16_ms: tuple[float | None, ...]
    int8_ms: dict  # path -> tuple per GEMM_MS (entries None where given up); absent path = unavailable
    fbgemm_full_range: bool
    train_fp32_ms: tuple[float, ...]  # per TRAIN_WIDTHS
    train_bf16_ms: tuple[float | None, ...]
    int_mm_exact: bool = True  # False: torch._int_mm saturates here (not timed, not a candidate)
    ce_kernel_ms: tuple[float, ...] = ()  # per ce_shapes(): our cross-entropy kernel
    ce_torch_ms: tuple[float, ...] = ()  # torch.nn.functional.cross_entropy
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gemm_ms"], d["gemm_d"], d["train_widths"] = list(GEMM_MS), GEMM_D, list(TRAIN_WIDTHS)
        d["ce_shapes"] = [list(nv) for nv in ce_shapes()]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Validate a dict read back from a file; raises ValueError naming the first bad field."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {d.get('version')!r}, expected {FORMAT_VERSION}")
        if (d.get("gemm_ms") != list(GEMM_MS) or d.get("train_widths") != list(TRAIN_WIDTHS)
                or d.get("gemm_d") != GEMM_D or d.get("ce_shapes") != [list(nv) for nv in ce_shapes()]):
            raise ValueError("shapes differ from this version's calibration shapes")
        if not isinstance(d.get("key"), str) or not isinstance(d.get("capabilities"), dict):
            raise ValueError("key/capabilities missing")
        for name in ("created", "seconds", "cpu_seconds", "load"):
            if not _is_time(d.get(name), allow_zero=True):
                raise ValueError(f"{name}: expected a finite non-negative number")
        for name in ("fbgemm_full_range", "int_mm_exact"):
            if not isinstance(d.get(name), bool):
                raise ValueError(f"{name}: expected true/false")
        int8 = d.get("int8_ms")
        if not isinstance(int8, dict) or not set(int8) <= set(INT8_PATHS) or "dequant" not in int8:
            raise ValueError(f"int8_ms: expected an object with paths among {INT8_PATHS}, dequant included")
        fields = {"gemm_fp32_ms": (len(GEMM_MS), False), "gemm_bf16_ms": (len(GEMM_MS), True),
                  "train_fp32_ms": (len(TRAIN_WIDTHS), False), "train_bf16_ms": (len(TRAIN_WIDTHS), True),
                  "ce_kernel_ms": (len(ce_shapes()), False), "ce_torch_ms": (len(ce_shapes()), False)}
        fields.update({f"int8_ms.{p}": (len(GEMM_MS), True) for p in int8})
        out = {}
        for name, (n, nullable) in fields.items():
            v = int8[name.split(".")[1]] if name.startswith("int8_ms.") else d.get(name)
            if not isinstance(v, list) or len(v) != n or not all(
                    (x is None and nullable) or _is_time(x) for x in v):
                raise ValueError(f"{name}: expected {n} positive finite times{' or nulls' if nullable else ''}")
            out[name] = tuple(v)
        return cls(key=d["key"], capabilities=d["capabilities"], created=float(d["created"]),
                   seconds=float(d["seconds"]), cpu_seconds=float(d["cpu_seconds"]), load=float(d["load"]), gemm_fp32_ms=out["gemm_fp32_ms"], gemm_bf16_ms=out["gemm_bf16_ms"],
                   int8_ms={p: out[f"int8_ms.{p}"] for p in int8}, fbgemm_full_range=d["fbgemm_full_range"],
                   train_fp32_ms=out["train_fp32_ms"], train_bf16_ms=out["train_bf16_ms"],
                   int_mm_exact=d["int_mm_exact"], ce_kernel_ms=out["ce_kernel_ms"], ce_torch_ms=out["ce_torch_ms"])


def ce_shapes() -> tuple[tuple[int, int], ...]:
    """(N, V) of the cross-entropy probe: every V of CE_VOCABS at every N·V of CE_ELEMENTS (N ≥ 1)."""
    return tuple((max(1, e // v), v) for v in CE_VOCABS for e in CE_ELEMENTS)


def _is_time(x, allow_zero: bool = False) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            and (x >= 0 if allow_zero else x > 0))


# ------------------------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scalinglab"


def cache_path(caps: Capabilities) -> Path:
    return cache_dir() / f"hw-{caps.cache_key()}.json"


def load_cached(caps: Capabilities) -> Calibration | None:
    """The cached calibration for these capabilities, or None when absent or invalid."""
    path = cache_path(caps)
    try:
        cal = Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    return cal if cal.key == caps.cache_key() else None


def save(cal: Calibration, caps: Capabilities) -> Path:
    """Write atomically (temporary file in the same directory, then rename)."""
    path = cache_path(caps)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hw-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(cal.to_dict(), fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------- timing


def _load_per_core() -> float:
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (OSError, AttributeError):
        return 0.0


def clock():
    """The timer for one call: with a single torch thread, the process's CPU time (immune to being
    descheduled by other processes); with several, wall time (their CPU times would add up)."""
    import torch

    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def _race(fns: dict, budget_s: float = CALL_BUDGET_S) -> dict[str, float]:
    """Fastest call in ms of each function, timed in interleaved rounds after one warm-up call each, so
    load from other processes falls on every candidate alike (the minimum is the least disturbed)."""
    best = dict.fromkeys(fns, math.inf)
    spent = 0.0
    now = clock()
    for fn in fns.values():
        fn()
    for rnd in range(MAX_REPS):
        for name, fn in fns.items():
            t = now()
            fn()
            dt = now() - t
            best[name], spent = min(best[name], dt), spent + dt
        if rnd >= 2 and spent > budget_s * len(fns):
            break
    return {name: 1e3 * t for name, t in best.items()}


def _races(makers: dict, sizes) -> dict[str, tuple[float | None, ...]]:
    """Race ``makers[name](size)`` per size, ``fp32`` first among them; a candidate GIVE_UP_RATIO× slower
    than fp32 at one size is not timed at the larger ones (None), nor where its maker returns None."""
    out: dict[str, list] = {name: [] for name in makers}
    alive = set(makers)
    for size in sizes:
        fns = {name: make(size) for name, make in makers.items() if name in alive}
        ms = _race({name: fn for name, fn in fns.items() if fn is not None})
        for name in makers:
            out[name].append(ms.get(name))
        alive = {name for name in alive if name not in ms or ms[name] <= GIVE_UP_RATIO * ms["fp32"]} | {"fp32"}
    return {name: tuple(v) for name, v in out.items()}


def measure(caps: Capabilities) -> Calibration:
    """Run the calibration (about 1–2 s) and return it; the caller caches it."""
    import numba
    import torch
    import torch.nn.functional as F

    from scalinglab.kernels import int8_backends as B
    from scalinglab.quant.linear import QuantLinear
    from scalinglab.quant.primitives import quantize_weight

    t_start, cpu_start = time.perf_counter(), time.process_time()
    gen = torch.Generator().manual_seed(0)
    d = GEMM_D
    w = torch.randn(d, d, generator=gen) / math.sqrt(d)
    b = torch.randn(d, generator=gen)
    xs = {m: torch.randn(m, d, generator=gen) for m in GEMM_MS}
    full_range, int_mm_exact = B.full_range_exact(), B.int_mm_exact()
    paths = _available_paths(int_mm_exact)
    w_q, w_scale = quantize_weight(w, 8)
    wb, bb = w.bfloat16(), b.bfloat16()
    makers = {"fp32": lambda m: (lambda x=xs[m]: F.linear(x, w, b)),
              "bf16": lambda m: (lambda x=xs[m].bfloat16(): F.linear(x, wb, bb))}
    for path in paths:
        lin = QuantLinear.from_parts(w_q, w_scale, b, "token", 8, 8).set_path(path, full_range)
        limit = GEMV_MAX_M if path == "gemv" else math.inf
        makers[path] = lambda m, lin=lin, limit=limit: (lambda x=xs[m]: lin(x)) if m <= limit else None
    threads, nb_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)  # one thread, timed in CPU time: see the module docstring
    numba.set_num_threads(1)
    try:
        with torch.no_grad():
            gemm = _races(makers, GEMM_MS)
            ce = _ce_races(torch, F)
        with torch.inference_mode(False), torch.enable_grad():  # callers may be inside no_grad
            train = _train_races(torch, F)
    finally:
        torch.set_num_threads(threads)
        numba.set_num_threads(nb_threads)
    return Calibration(key=caps.cache_key(), capabilities=json.loads(json.dumps(caps.to_dict())), created=time.time(),
                       seconds=time.perf_counter() - t_start, cpu_seconds=time.process_time() - cpu_start, load=_load_per_core(), gemm_fp32_ms=gemm["fp32"], gemm_bf16_ms=gemm["bf16"],
                       int8_ms={p: gemm[p] for p in paths}, fbgemm_full_range=full_range,
                       train_fp32_ms=train["fp32"], train_bf16_ms=train["bf16"], int_mm_exact=int_mm_exact,
                       ce_kernel_ms=ce["kernel"], ce_torch_ms=ce["torch"])


def _ce_races(torch, F) -> dict[str, tuple[float, ...]]:
    """Our cross-entropy kernel against torch's on float32 logits, per ce_shapes()."""
    from scalinglab.kernels.softmax_api import cross_entropy

    gen = torch.Generator().manual_seed(2)
    out: dict[str, list] = {"kernel": [], "torch": []}
    for n, v in ce_shapes():
        logits = torch.randn(n, v, generator=gen) * 3
        targets = torch.randint(0, v, (n,), generator=gen)
        ms = _race({"kernel": lambda x=logits, t=targets: cross_entropy(x, t),
                    "torch": lambda x=logits, t=targets: F.cross_entropy(x, t)}, budget_s=CE_BUDGET_S)
        out["kernel"].append(ms["kernel"])
        out["torch"].append(ms["torch"])
    return {k: tuple(v) for k, v in out.items()}


def _available_paths(int_mm_exact: bool) -> tuple[str, ...]:
    """The int8 paths worth timing here: ``torch._int_mm`` only where it computes the exact product."""
    import torch

    from scalinglab.kernels import int8_backends as B

    paths = []
    if hasattr(torch, "_int_mm") and int_mm_exact:
        paths.append("int_mm")
    if B.fbgemm_available():
        paths.append("fbgemm")
    return (*paths, "gemv", "dequant")


def _train_races(torch, F) -> dict[str, tuple[float | None, ...]]:
    """fp32 vs bf16-autocast forward + backward of x → W1 → GELU → W2 at each width."""
    gen = torch.Generator().manual_seed(1)

    def step(width: int, bf16: bool):
        w1 = torch.randn(width, width, generator=gen, requires_grad=True)
        w2 = torch.randn(width, width, generator=gen, requires_grad=True)
        x = torch.randn(TRAIN_TOKENS, width, generator=gen)

        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = F.linear(F.gelu(F.linear(x, w1)), w2)
            y.float().sum().backward()
            w1.grad = w2.grad = None
        return run

    return _races({"fp32": lambda width: step(width, False), "bf16": lambda width: step(width, True)},
                  TRAIN_WIDTHS)
