"""Decisions from measurements: which int8 path a quantized linear takes, when ``auto`` trains in bf16.

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
from scalinglab.hw.calibrate import GEMM_MS, INT8_PATHS, TRAIN_WIDTHS, Calibration

__all__ = ["Int8Plan", "choose_int8_path", "bf16_min_width", "calibration", "int8_plan", "use_bf16",
           "injected", "BF16_MARGIN", "reset", "provisional"]

# bf16 must beat fp32 by this factor in the calibration's fwd+bwd probe before `auto` trains in it: the
# probe has no attention, norms or optimizer step, which cost the same in both precisions.
BF16_MARGIN = 0.9
_PATH_ENV = "SCALINGLAB_INT8_PATH"


@dataclass(frozen=True)
class Int8Plan:
    """How quantized linears run on this device: ``path`` and whether fbgemm may use 8-bit activation
    codes (else 7-bit, its int16-saturation guard)."""

    path: str
    full_range: bool
    reason: str


def _worst_ratio(fp32_ms, path_ms) -> float:
    """min over calibrated M of fp32 time / path time (≥ 1: never slower than fp32); 0 if given up."""
    return min((f / p if p else 0.0) for f, p in zip(fp32_ms, path_ms, strict=True))


def choose_int8_path(cal: Calibration) -> Int8Plan:
    """The int8 path with the best worst-case speed against fp32 over the calibrated batch sizes, if that
    is ≥ 1; otherwise ``dequant`` (float weights, fp32 speed) — a quantized model is never slower."""
    ratios = {p: _worst_ratio(cal.gemm_fp32_ms, ms) for p, ms in cal.int8_ms.items() if p != "dequant"}
    desc = ", ".join(f"{p} {r:.2f}×" for p, r in ratios.items())
    if ratios:
        best = max(ratios, key=ratios.get)
        if ratios[best] >= 1.0:
            return Int8Plan(best, cal.fbgemm_full_range, f"worst case vs fp32 over M={list(GEMM_MS)}: {desc}")
    return Int8Plan("dequant", cal.fbgemm_full_range, f"no int8 path as fast as fp32 ({desc or 'none available'})")


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
        return Int8Plan(forced, full, f"forced by {_PATH_ENV}")
    if device != "cpu":
        return Int8Plan("int_mm", True, f"{device}: not calibrated, torch._int_mm")
    return choose_int8_path(calibration())


def use_bf16(d_model: int, device: str = "cpu") -> bool:
    """Whether ``precision: auto`` trains a model of this width in bf16 on this machine."""
    if device != "cpu":
        return False
    threshold = bf16_min_width(calibration())
    return threshold is not None and d_model >= threshold
