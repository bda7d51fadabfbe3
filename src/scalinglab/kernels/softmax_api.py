"""Softmax, log-softmax and cross-entropy on compiled CPU kernels, for NumPy arrays and torch tensors.

    >>> import numpy as np
    >>> from scalinglab.kernels import softmax, log_softmax, cross_entropy
    >>> y = softmax(np.array([[1.0, 2.0, 3.0]], np.float32))          # two-pass by default
    >>> y = softmax(x, axis=0, algorithm="three-pass-reload")          # any axis, any algorithm
    >>> loss = cross_entropy(logits, targets)                          # torch in → torch out
    >>> softmax(x, out=buf)                                            # into a reused buffer

The default algorithm is the Two-Pass Softmax of Dukhan & Ablavatski (2020), see
``softmax_kernels.py``; the others are there to compare against (``benchmarks/softmax.py``).

Semantics, float32 and float64 alike:

* max relative error ≤ 2e-6 (float32) against a float64 reference for outputs above the smallest
  normal number; outputs below it (< 1.2e-38 in float32) may be flushed to 0.
* inputs anywhere in −1e30…+1e30 never overflow; −inf entries get probability 0.
* a row holding NaN, +inf, or only −inf entries comes out all NaN (as ``torch.softmax``); other rows
  are unaffected.
* ``log_softmax`` is ``(x − n_sum·ln 2) − ln m_sum`` with the first difference exact, so entries far
  below the max keep full relative accuracy.

Arrays are processed in place of a C-contiguous (rows, n) view: a torch tensor or NumPy array whose
reduced axis is last and contiguous costs no copy in or out (``torch.from_numpy`` / ``.numpy()``);
another axis is moved last with one copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalinglab.errors import InputError

__all__ = ["ALGORITHMS", "softmax", "log_softmax", "cross_entropy"]

ALGORITHMS = {"two-pass": 0, "online": 1, "three-pass-reload": 2, "three-pass-recompute": 3}
TORCH_IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """A NumPy view of x (no copy for CPU torch tensors and float arrays); validates dtype."""
    if _is_torch(x):
        if x.device.type != "cpu":
            raise InputError(f"{name}: only CPU tensors are supported, got device {x.device}")
        x = x.detach().numpy()
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        raise InputError(f"{name}: expected float32 or float64, got {arr.dtype}")
    return arr


def _like_input(y: np.ndarray, template: Any) -> Any:
    if _is_torch(template):
        import torch

        return torch.from_numpy(y)
    return y


def _out_view(out: Any, arr: np.ndarray) -> np.ndarray:
    """A writable NumPy view of the caller's ``out`` buffer, checked against the input ``arr``."""
    if _is_torch(out):
        if out.device.type != "cpu":
            raise InputError(f"out: only CPU tensors are supported, got device {out.device}")
        if out.requires_grad:
            raise InputError("out: a tensor that requires grad cannot be written in place")
        view = out.detach().numpy()
    elif isinstance(out, np.ndarray):
        view = out
    else:
        raise InputError(f"out: expected a NumPy array or a CPU torch tensor, got {type(out).__name__}")
    if view.shape != arr.shape:
        raise InputError(f"out: expected shape {arr.shape} (the shape of x), got {view.shape}")
    if view.dtype != arr.dtype:
        raise InputError(f"out: expected dtype {arr.dtype} (the dtype of x), got {view.dtype}")
    if not view.flags.writeable:
        raise InputError("out: the array is read-only")
    same = view.__array_interface__["data"][0] == arr.__array_interface__["data"][0] and view.strides == arr.strides
    if not same and np.shares_memory(view, arr):
        raise InputError("out: overlaps x only in part; pass x itself (in place) or a separate buffer")
    return view


def _softmax_nd(x: Any, axis: int, algorithm: str, log: bool, out: Any = None) -> Any:
    from scalinglab.kernels.softmax_driver import softmax_2d

    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm: expected one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    arr = _to_numpy(x, "x")
    if arr.ndim == 0:
        raise InputError("x: softmax needs at least one axis, got a scalar")
    if not -arr.ndim <= axis < arr.ndim:
        raise InputError(f"axis: {axis} is out of range for an array of {arr.ndim} dimensions")
    out_arr = None if out is None else _out_view(out, arr)
    moved = np.moveaxis(arr, axis, -1)
    x2 = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1]) if moved.size else moved.reshape(0, 0)
    y2 = None
    if out_arr is not None:
        out_moved = np.moveaxis(out_arr, axis, -1)
        if out_moved.flags.c_contiguous and out_moved.size:
            y2 = out_moved.reshape(x2.shape)  # a view: the kernel writes straight into the caller's buffer
    direct = y2 is not None
    if y2 is None:
        y2 = np.empty_like(x2)
    if x2.size:
        softmax_2d(x2, y2, ALGORITHMS[algorithm], log)
    if out_arr is not None:
        if not direct and y2.size:
            np.moveaxis(out_arr, axis, -1)[...] = y2.reshape(moved.shape)
        return out
    y = np.moveaxis(y2.reshape(moved.shape), -1, axis)
    return _like_input(y, x)


def softmax(x: Any, axis: int = -1, algorithm: str = "two-pass", out: Any = None) -> Any:
    """exp(x) / Σ exp(x) along ``axis``; ``algorithm`` one of :data:`ALGORITHMS`. Same type out as in.

    ``out``: an optional NumPy array or CPU torch tensor of x's shape and dtype to write into (and
    return), e.g. a buffer reused across calls so no fresh memory is allocated and page-faulted per
    call. ``out`` may be ``x`` itself (in place). A C-contiguous ``out`` (along the moved axis) is
    written directly; any other layout gets one extra copy.
    """
    return _softmax_nd(x, axis, algorithm, log=False, out=out)


def log_softmax(x: Any, axis: int = -1, out: Any = None) -> Any:
    """x − log Σ exp(x) along ``axis`` (two-pass: one reduction pass, one writing pass); ``out`` as in :func:`softmax`."""
    return _softmax_nd(x, axis, "two-pass", log=True, out=out)


def cross_entropy(
    logits: Any, targets: Any, reduction: str = "mean", ignore_index: int = TORCH_IGNORE_INDEX
) -> Any:
    """Cross-entropy of logits (N, V) against class indices (N,), as ``torch.nn.functional.cross_entropy``.

    Loss per row is ``logsumexp(x) − x[target]`` from two-pass pass 1 alone: the logits are read once
    and nothing of size N×V is written (torch materialises the log-softmax first). ``reduction`` is
    ``"mean"`` (over rows whose target is not ``ignore_index``; NaN if none), ``"sum"`` or ``"none"``.
    Returns a torch tensor when ``logits`` is one, else a NumPy scalar/array, in the logits' dtype.
    """
    from scalinglab.kernels.softmax_driver import cross_entropy_rows

    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    x2 = _to_numpy(logits, "logits")
    t = targets.detach().numpy() if _is_torch(targets) else np.asarray(targets)
    if x2.ndim != 2:
        raise InputError(f"logits: expected shape (N, V), got {x2.shape}")
    if t.shape != (x2.shape[0],) or t.dtype.kind not in "iu":
        raise InputError(f"targets: expected integer class indices of shape ({x2.shape[0]},), got {t.dtype} {t.shape}")
    t = t.astype(np.int64, copy=False)
    keep = t != ignore_index
    if keep.any() and (t[keep].min() < 0 or t[keep].max() >= x2.shape[1]):
        raise InputError(f"targets: class indices must lie in [0, {x2.shape[1]}) or equal ignore_index")
    x2 = np.ascontiguousarray(x2)
    loss = cross_entropy_rows(x2, np.ascontiguousarray(t), ignore_index) if x2.shape[0] else x2[:, :0].sum(1)
    if reduction == "none":
        out: Any = loss
    elif reduction == "sum":
        out = np.asarray(loss.sum(dtype=np.float64), dtype=x2.dtype)
    else:
        count = int(keep.sum())
        out = np.asarray(loss.sum(dtype=np.float64) / count if count else np.nan, dtype=x2.dtype)
    if _is_torch(logits):
        import torch

        return torch.from_numpy(np.array(out))  # 0-d stays 0-d (ascontiguousarray would make it 1-d)
    return out if reduction == "none" else out[()]
