"""Where a ladder run trains: device choice, autocast, host→device batches and ``torch.compile``.

    from scalinglab.ladder.device import resolve_device, autocast, to_device, should_compile
    device = resolve_device("auto")            # "cuda" when torch sees a GPU, else "cpu"
    with autocast(device, bf16=True): ...      # bf16 autocast on that device type
    x = to_device(x, device)                   # pinned host copy + non-blocking transfer on CUDA

Every decision is a small pure function of its inputs (and of ``torch.cuda.is_available()``), so the CUDA
plumbing is tested on a CPU-only machine by patching that one call.

Choices and why:
- ``auto`` precision on CUDA is bf16 at every width: the GPU's bf16 tensor cores run the matmuls, the
  weights and optimizer state stay fp32 (autocast). On CPU, bf16 pays only from the width at which this
  machine's calibration measured it faster than fp32 (``scalinglab.hw``; ``ladder/train.py`` asks it).
- Batches are drawn on the host (the corpus samplers are numpy), copied to page-locked memory and sent
  with ``non_blocking=True``, so the copy overlaps the previous step's kernels.
- ``compile="auto"`` compiles on CUDA only for runs of at least ``COMPILE_MIN_STEPS`` optimizer steps:
  compiling a small GPT costs tens of seconds once per shape, which a short run never earns back
  (figures in docs/gpu.md). On CPU, ``auto`` never compiles.
"""

from __future__ import annotations

import contextlib

from scalinglab.errors import InputError

__all__ = ["DEVICES", "COMPILE_MODES", "COMPILE_MIN_STEPS", "cuda_available", "resolve_device", "autocast",
           "to_device", "should_compile"]

DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("auto", "on", "off")
# compile="auto" on CUDA from this many optimizer steps. benchmarks/gpu_check.py on an H200 (torch 2.11,
# bf16 autocast): d64-L2 (batch 32 × 64) 6.14 → 4.36 ms/step for 8.0 s of compiling, break-even after
# 4.5k steps; d512-L8 (32 × 256) 13.5 → 12.4 ms/step for 30.8 s, break-even after 28k steps. Past both.
COMPILE_MIN_STEPS = 30_000


def cuda_available() -> bool:
    """``torch.cuda.is_available()``: the single probe the device choice rests on (tests patch it)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` with no GPU is an input error."""
    if name not in DEVICES:
        raise InputError(f"device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    available = cuda_available()
    if name == "cuda" and not available:
        import torch

        raise InputError(f"device 'cuda': torch {torch.__version__} sees no CUDA GPU "
                         f"(CUDA build: {torch.version.cuda or 'none'}); use device: cpu or auto")
    return "cuda" if available else "cpu"


def autocast(device: str, bf16: bool):
    """bf16 autocast on ``device``'s type, or a no-op context when ``bf16`` is False."""
    if not bf16:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def to_device(t, device: str):
    """A host tensor on ``device``: on CUDA through a page-locked copy and a non-blocking transfer."""
    if device == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def should_compile(mode: str, device: str, steps: int) -> bool:
    """Whether to ``torch.compile`` the model for a run of ``steps`` optimizer steps on ``device``."""
    if mode not in COMPILE_MODES:
        raise InputError(f"compile {mode!r}: expected one of {', '.join(COMPILE_MODES)}")
    if mode != "auto":
        return mode == "on"
    return device == "cuda" and steps >= COMPILE_MIN_STEPS
