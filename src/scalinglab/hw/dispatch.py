"""Decisions from measurements: which int8 path a quantized linear takes at each batch size, when
``auto`` trains in bf16, from which size the cross-entropy kernel beats torch's.

The rules are pure functions of a :class:`Calibration`, so tests hand them made-up numbers. The
accessors (:func:`calibration`, :func:`int8_plan`, :func:`use_bf16`) load this machine's cached
calibration, or measure it once (< 2 s), and remember it for the process.

Overrides, for experiments and tests: ``SCALINGLAB_INT8_PATH=int_mm|fbgemm|dequant`` forces a path;
``SCALINGLAB_FORCE_CALIBRATION`` (any value) ignores the cache file and measures again.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from scalinglab.errors import InputError
from scalinglab.hw.calibrate import (
    CE_ELEMENTS,
    CE_VOCABS,
    GEMM_MS,
    INT8_PATHS,
    TRAIN_WIDTHS,
    Calibration,
    ce_shapes,
)

__all__ = ["Int8Plan", "choose_int8_path", "bf16_min_width", "calibration", "int8_plan", "use_bf16",
           "injected", "BF16_MARGIN", "reset", "provisional", "bucket", "BUCKET_NAMES", "ce_min_elements",
           "use_ce_kernel"]

# bf16 must beat fp32 by this factor in the calibration's fwd+bwd probe before `auto` trains in it: the
# probe has no attention, norms or optimizer step, which cost the same in both precisions.
BF16_MARGIN = 0.9
_PATH_ENV = "SCALINGLAB_INT8_PATH"


BUCKET_NAMES = tuple(f"M={m}" if i == 0 else (f"M≤{m}" if i < len(GEMM_MS) - 1 else f"M>{GEMM_MS[i - 1]}")
                     for i, m in enumerate(GEMM_MS))


def bucket(m: int) -> int:
    """The batch bucket of an M-row input: the first calibrated size ≥ M (the last bucket takes the rest)."""
    for i, size in enumerate(GEMM_MS[:-1]):
        if m <= size:
            return i
    return len(GEMM_MS) - 1


@dataclass(frozen=True)
class Int8Plan:
    """How quantized linears run on this device: one path per batch bucket (``paths[bucket(M)]``), and
    whether fbgemm may use 8-bit activation codes (else 7-bit, its int16-saturation guard)."""

    paths: tuple[str, ...]
    full_range: bool
    reason: str

    def path_for(self, m: int) -> str:
        return self.paths[bucket(m)]

    @property
    def path(self) -> str:
        """The path of the largest batches (what a perplexity evaluation runs on)."""
        return self.paths[-1]

    def activation_bits(self, path: str) -> int:
        return 7 if path == "fbgemm" and not self.full_range else 8

    def describe(self) -> str:
        """One line: ``M=1 gemv (8-bit), M≤16 int_mm (8-bit), M>16 int_mm (8-bit)``."""
        return ", ".join(f"{name} {p} ({self.activation_bits(p)}-bit)" for name, p in zip(BUCKET_NAMES, self.paths,
                                                                                          strict=True))


# Where the weight codes live for each path: fbgemm keeps its own prepacked copy, the others read w_t.
STORAGE = {"int_mm": "codes", "gemv": "codes", "dequant": "codes", "fbgemm": "packed"}
# A plan whose buckets share one weight copy is preferred while each bucket stays within this factor of
# its fastest path (a layer running fbgemm and a w_t path holds both copies: 2 bytes per weight).
ONE_COPY_MARGIN = 1.1


def choose_int8_path(cal: Calibration) -> Int8Plan:
    """Per batch bucket, the fastest path measured at that bucket's size (int8 paths and ``dequant``,
    which is the same quantized function through an fp32 GEMM) — unless one weight storage serves every
    bucket within ONE_COPY_MARGIN of its fastest, then that. Paths are only timed where they are exact
    (hw/calibrate.py), so any choice computes the method's own function."""
    timed = [{p: ms[i] for p, ms in cal.int8_ms.items() if ms[i] is not None} for i in range(len(GEMM_MS))]
    fastest = [min(t, key=t.get) if t else "dequant" for t in timed]
    paths, cost = fastest, None
    for storage in ("codes", "packed"):
        alt = []
        for t, best in zip(timed, fastest, strict=True):
            ok = {p: ms for p, ms in t.items() if STORAGE[p] == storage and ms <= ONE_COPY_MARGIN * t[best]}
            alt.append(min(ok, key=ok.get) if ok else None)
        if all(alt):
            slowdown = sum(t[p] / t[b] for t, p, b in zip(timed, alt, fastest, strict=True))
            if cost is None or slowdown < cost:
                paths, cost = alt, slowdown
    notes = [f"{name} {p} {fp32 / t[p]:.2f}× fp32" if p in t else f"{name} dequant (untimed)"
             for name, p, t, fp32 in zip(BUCKET_NAMES, paths, timed, cal.gemm_fp32_ms, strict=True)]
    shared = "one weight copy" if len({STORAGE[p] for p in paths}) == 1 else "two weight copies (fbgemm's and w_t)"
    excluded = "" if cal.int_mm_exact else "; int_mm inexact here (int16 saturation), not used"
    return Int8Plan(tuple(paths), cal.fbgemm_full_range,
                    f"fastest per batch bucket, {shared}: " + ", ".join(notes) + excluded)


def bf16_min_width(cal: Calibration) -> int | None:
    """Smallest calibrated width from which bf16 beat fp32 (by BF16_MARGIN) at it and every wider one."""
    best = None
    for width, f, b in reversed(list(zip(TRAIN_WIDTHS, cal.train_fp32_ms, cal.train_bf16_ms, strict=True))):
        if b is None or b > BF16_MARGIN * f:
            break
        best = width
    return best


# A calibration taken while other processes kept the cores busy (1-minute load average per core above
# NOISY_LOAD) is used, but replaced the next time a process starts on a quiet machine (below QUIET_LOAD).
NOISY_LOAD = 1.0
QUIET_LOAD = 0.5


def provisional(cal: Calibration, load_now: float) -> bool:
    """Whether a cached calibration should be measured again now (noisy then, quiet now)."""
    return cal.load > NOISY_LOAD and load_now < QUIET_LOAD


_STATE: dict = {}


def reset() -> None:
    """Forget the remembered calibration (the next decision loads or measures again)."""
    _STATE.clear()


def calibration(recalibrate: bool = False) -> Calibration:
    """This machine's calibration: remembered, else the cache file, else measured now and cached."""
    from scalinglab.hw import calibrate as C
    from scalinglab.hw.capabilities import detect

    caps = detect()
    if "injected" in _STATE:
        return _STATE["injected"]
    if not recalibrate and caps.cache_key() in _STATE:
        return _STATE[caps.cache_key()]
    fresh = recalibrate or bool(os.environ.get("SCALINGLAB_FORCE_CALIBRATION"))
    cal = None if fresh else C.load_cached(caps)
    if cal is not None and provisional(cal, C._load_per_core()):
        fresh, cal = True, None
    if cal is None:
        with _calibration_lock(C.cache_dir()):  # parallel workers: one measures, the others read its file
            cal = None if fresh else C.load_cached(caps)
            if cal is None:
                cal = C.measure(caps)
                try:
                    C.save(cal, caps)
                except OSError:  # a read-only home still gets the right decisions, measured per process
                    pass
    _STATE[caps.cache_key()] = cal
    return cal


@contextmanager
def _calibration_lock(directory):
    """An exclusive flock on ``directory/.calibrate.lock`` (no lock where the directory is not writable):
    two processes measuring at once would each see the other's load in their timings."""
    try:
        import fcntl

        directory.mkdir(parents=True, exist_ok=True)
        fh = open(directory / ".calibrate.lock", "w")  # noqa: SIM115 - closed below
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
    finally:
        fh.close()


@contextmanager
def injected(cal: Calibration):
    """Use ``cal`` for every decision inside the block (tests)."""
    _STATE["injected"] = cal
    try:
        yield cal
    finally:
        _STATE.pop("injected", None)


def int8_plan(device: str = "cpu") -> Int8Plan:
    """The int8 path for linears on ``device``. Only CPU decisions are measured here; other devices keep
    ``int_mm`` (``torch._int_mm`` has CUDA kernels) until they get calibrations of their own."""
    forced = os.environ.get(_PATH_ENV)
    if forced:
        if forced not in INT8_PATHS:
            raise InputError(f"{_PATH_ENV}={forced!r}: expected one of {', '.join(INT8_PATHS)}")
        full = calibration().fbgemm_full_range if forced == "fbgemm" else True
        return Int8Plan((forced,) * len(GEMM_MS), full, f"forced by {_PATH_ENV}")
    if device != "cpu":
        return Int8Plan(("int_mm",) * len(GEMM_MS), True, f"{device}: not calibrated, torch._int_mm")
    return choose_int8_path(calibration())


def use_bf16(d_model: int, device: str = "cpu") -> bool:
    """Whether ``precision: auto`` trains a model of this width in bf16 on this machine."""
    if device != "cpu":
        return False
    threshold = bf16_min_width(calibration())
    return threshold is not None and d_model >= threshold


def ce_min_elements(cal: Calibration) -> tuple[int | None, ...]:
    """Per vocabulary size of CE_VOCABS, the smallest calibrated N·V from which our cross-entropy kernel
    was faster than torch's at it and at every larger calibrated size (None: torch at every size)."""
    times = dict(zip(ce_shapes(), zip(cal.ce_kernel_ms, cal.ce_torch_ms, strict=True), strict=True))
    out = []
    for v in CE_VOCABS:
        best = None
        for e in reversed(CE_ELEMENTS):
            kernel, torch_ms = times[(max(1, e // v), v)]
            if kernel > torch_ms:
                break
            best = e
        out.append(best)
    return tuple(out)


def use_ce_kernel(n_rows: int, vocab: int, cal: Calibration | None = None) -> bool:
    """Whether (N, V) float32 logits go to our kernel: V is judged by the largest calibrated vocabulary
    not above it (below the smallest: torch), against that vocabulary's N·V threshold."""
    if vocab < CE_VOCABS[0]:
        return False
    i = max(j for j, v in enumerate(CE_VOCABS) if v <= vocab)
    cal = calibration() if cal is None else cal
    memo = _STATE.get("ce")
    if memo is None or memo[0] is not cal:
        memo = _STATE["ce"] = (cal, ce_min_elements(cal))
    threshold = memo[1][i]
    return threshold is not None and n_rows * vocab >= threshold
