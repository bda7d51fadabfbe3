"""LLM.int8()'s decomposition in two fused numba passes around the int8 GEMM.

Dettmers et al. 2022, Eq. 3: ``Y = (X_q·W_qᵀ) ⊙ (s_x s_wᵀ) + X[:,O]·W[:,O]ᵀ + b`` with O the input
columns holding any ``|x| ≥ threshold``. Done op by op that is a dozen small calls (column amax, compare,
mask, row quantizer, nonzero, index maps, gathers, addmm) whose fixed costs exceed the GEMM itself at a
few tokens — LLM.int8 ran at 0.81× bf16 at 16 × 768 on an AVX-512 BF16 CPU. Here:

1. :func:`scan_quantize`: column amax → outlier columns → per-row absmax of the other columns → codes,
   in one call (X is read twice while it sits in cache);
2. the int8 GEMM (``torch._int_mm`` or fbgemm, quant/linear.py);
3. :func:`dequant_outliers_` / :func:`rescale_outliers_`: ``acc·s_x[i]·s_w[j] + b[j]`` (or the row scale
   and bias of an already column-scaled product) plus ``Σ_{c∈O} x[i,c]·W[j,c]`` from the kept float
   weight columns, row by row so each output row stays in cache across the outlier columns.

A run-time outlier column that calibration never saw has no float column; the caller then takes the
general path (int8_matmul.add_outlier_product_), which falls back to its dequantized int8 column.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from scalinglab.kernels.int8_matmul import _JIT, LANES, _f32_2d, _quantize_rows

__all__ = ["scan_quantize", "dequant_outliers_", "rescale_outliers_"]


@numba.njit(**_JIT)
def _scan_quant(x, threshold, qmax, col_slot, weight, cols, q, s):  # pragma: no cover - compiled
    """Returns the number of outlier columns, negated minus one if any has no kept float column."""
    m, k = x.shape
    colmax = np.zeros(k, np.float32)
    for i in range(m):
        for j in range(k):
            v = abs(x[i, j])
            colmax[j] = v if v > colmax[j] else colmax[j]
    n_out, seen = 0, True
    for j in range(k):
        if colmax[j] >= threshold:
            weight[j] = 0.0
            cols[n_out] = j
            n_out += 1
            seen = seen and col_slot[j] >= 0
        else:
            weight[j] = 1.0
    _quantize_rows(x, weight, qmax, q, s, np.empty(LANES, np.float32))
    return n_out if seen else -n_out - 1


@numba.njit(inline="always", **_JIT)
def _outliers_row(out, i, x, cols, col_slot, w_o):  # pragma: no cover - compiled
    n = out.shape[1]
    for c in range(cols.shape[0]):
        col = cols[c]
        xv = x[i, col]
        r = col_slot[col]
        for j in range(n):
            out[i, j] += xv * w_o[r, j]


@numba.njit(inline="always", **_JIT)
def _dequant_outliers_body(acc, sx, sw, bias, x, cols, col_slot, w_o, out):  # pragma: no cover - compiled
    m, n = acc.shape
    for i in range(m):
        si = sx[i]
        for j in range(n):
            out[i, j] = np.float32(acc[i, j]) * (si * sw[j]) + bias[j]
        _outliers_row(out, i, x, cols, col_slot, w_o)


@numba.njit(**_JIT)
def _dequant_outliers_inplace(acc, sx, sw, bias, x, cols, col_slot, w_o):  # pragma: no cover - compiled
    _dequant_outliers_body(acc, sx, sw, bias, x, cols, col_slot, w_o, acc.view(np.float32))


@numba.njit(**_JIT)
def _rescale_outliers(y, sx, bias, x, cols, col_slot, w_o):  # pragma: no cover - compiled
    m, n = y.shape
    for i in range(m):
        si = sx[i]
        for j in range(n):
            y[i, j] = y[i, j] * si + bias[j]
        _outliers_row(y, i, x, cols, col_slot, w_o)


def scan_quantize(x: torch.Tensor, threshold: float, qmax: int, col_slot: torch.Tensor,
                  out: torch.Tensor | None = None):
    """Outlier columns of X (M × K) and per-row codes of the rest, in one pass pair.

    Returns ``(codes, s_x (M,), cols (|O|,) int64, all_kept)``; ``all_kept`` is False when an outlier
    column has no kept float weight column (``col_slot[c] < 0``). ``out``: an (M × K) int8 or float32
    tensor for the codes."""
    x = _f32_2d(x)
    m, k = x.shape
    q = torch.empty((m, k), dtype=torch.int8) if out is None else out
    s = torch.empty(m, dtype=torch.float32)
    cols = np.empty(k, np.int64)  # numpy scratch: a few µs less per call than torch tensors at small M
    n = _scan_quant(x.numpy(), np.float32(threshold), qmax, col_slot.numpy(), np.empty(k, np.float32), cols,
                    q.numpy(), s.numpy())
    kept = n >= 0
    return q, s, torch.from_numpy(cols[: n if kept else -n - 1]), kept


def dequant_outliers_(acc: torch.Tensor, sx: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
                      cols: torch.Tensor, col_slot: torch.Tensor, outlier_w_t: torch.Tensor) -> torch.Tensor:
    """Over the int32 accumulator's own memory (a fresh ``int_mm`` output): the dequantized product plus
    the outlier columns' float product; returns the float32 view. ``x``: the float32 (M × K) matrix that
    was quantized (contiguous, as :func:`scan_quantize` made it)."""
    _dequant_outliers_inplace(acc.numpy(), sx.numpy(), sw.numpy(), bias.numpy(), x.numpy(),
                              cols.numpy(), col_slot.numpy(), outlier_w_t.numpy())
    return acc.view(torch.float32)


def rescale_outliers_(y: torch.Tensor, sx: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, cols: torch.Tensor,
                      col_slot: torch.Tensor, outlier_w_t: torch.Tensor) -> torch.Tensor:
    """In place over a column-scaled float product (fbgemm, dequant paths): row scale, bias, outliers;
    ``x`` as in :func:`dequant_outliers_`."""
    _rescale_outliers(y.numpy(), sx.numpy(), bias.numpy(), x.numpy(), cols.numpy(), col_slot.numpy(),
                      outlier_w_t.numpy())
    return y
