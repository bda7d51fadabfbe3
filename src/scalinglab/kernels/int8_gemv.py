"""Int8 × int8 products for a few rows (decode: one token at a time), fused with quantize and epilogue.

At M = 1 a linear layer is a matrix–vector product: each weight is read once and used once, so its time
is the time to stream the weights through the core, plus the fixed cost of every call around it. The
float32 GEMV streams 4 bytes per weight; the int8 codes are 1 byte, so a kernel that reads the int8
weights directly moves 4× less data — but only if the quantized layer's own fixed costs (quantize X,
call an int8 GEMM library, dequantize its int32 output: three calls and two buffers) do not eat the
difference. At d = 768 they did: the ``torch._int_mm`` layer ran at 0.80× of fp32 for one token.

Here the whole layer is one compiled call per input: row absmax and codes of X (the method's own
activation quantization — per token, or LLM.int8's per-token codes with the outlier columns left out),
the integer product with W_q read in its stored K × N layout, and ``acc·s_x[i]·s_w[j] + b[j]`` (Dettmers
et al. 2022, Eq. 3; the /127² is inside the scales), plus LLM.int8's float outlier product.

Exactness: products of codes |x_q|, |w_q| ≤ 127 are integers ≤ 127² = 16,129, accumulated in int32
(sign-extend, multiply, add: it vectorises on AVX2 and AVX-512 and measured faster than converting to
float32 for FMAs), so the accumulator is the exact integer ``Σ_k x_q[k]·w_q[k, j]`` for K ≤ MAX_K
(MAX_K·127² < 2^31) — the same number ``torch._int_mm`` returns — and the epilogue is the same float32
expression, so this path is bit-equal to the ``int_mm`` path.

Several rows are handled with the weight row reused across them (loop k outer, rows inner), so the
same kernel serves small batches; whether it wins there is the calibration's business (hw/).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from scalinglab.kernels.int8_matmul import _JIT, LANES, _f32_2d, _quantize_rows

__all__ = ["w8a8_gemv", "llm_int8_gemv", "codes_gemv", "weight_views", "fused_kernel", "MAX_K"]

MAX_K = (2**31 - 1) // 127**2  # 133,144 inputs: the int32 accumulator cannot overflow


@numba.njit(inline="always", **_JIT)
def _int_product(q, w_t, acc):  # pragma: no cover - compiled
    """acc (M × N) int32 += q (M × K codes, any numeric dtype) · w_t (K × N int8), exactly. Four weight
    rows per pass over each accumulator row (they stay in L1 across the M rows)."""
    m, k = q.shape
    n = w_t.shape[1]
    kk = 0
    while kk + 4 <= k:
        for i in range(m):
            x0, x1 = np.int32(q[i, kk]), np.int32(q[i, kk + 1])
            x2, x3 = np.int32(q[i, kk + 2]), np.int32(q[i, kk + 3])
            for j in range(n):
                acc[i, j] += ((x0 * np.int32(w_t[kk, j]) + x1 * np.int32(w_t[kk + 1, j]))
                              + (x2 * np.int32(w_t[kk + 2, j]) + x3 * np.int32(w_t[kk + 3, j])))
        kk += 4
    while kk < k:
        for i in range(m):
            x0 = np.int32(q[i, kk])
            for j in range(n):
                acc[i, j] += x0 * np.int32(w_t[kk, j])
        kk += 1


@numba.njit(inline="always", **_JIT)
def _epilogue(acc, sx, sw, bias, out):  # pragma: no cover - compiled
    m, n = acc.shape
    per_row = sx.shape[0] > 1
    for i in range(m):
        si = sx[i] if per_row else sx[0]
        for j in range(n):
            out[i, j] = np.float32(acc[i, j]) * (si * sw[j]) + bias[j]


@numba.njit(**_JIT)
def _w8a8(x, w_t, sw, bias, qmax):  # pragma: no cover - compiled
    m, k = x.shape
    out = np.empty((m, w_t.shape[1]), np.float32)
    q = np.empty((m, k), np.int32)
    s = np.empty(m, np.float32)
    _quantize_rows(x, np.ones(k, np.float32), qmax, q, s, np.empty(LANES, np.float32))
    acc = np.zeros(out.shape, np.int32)
    _int_product(q, w_t, acc)
    _epilogue(acc, s, sw, bias, out)
    return out


@numba.njit(**_JIT)
def _codes(q, sx, w_t, sw, bias):  # pragma: no cover - compiled
    out = np.empty((q.shape[0], w_t.shape[1]), np.float32)
    acc = np.zeros(out.shape, np.int32)
    _int_product(q, w_t, acc)
    _epilogue(acc, sx, sw, bias, out)
    return out


@numba.njit(**_JIT)
def _llm_int8(x, w_t, sw, bias, threshold, col_slot, w_o):  # pragma: no cover - compiled
    """LLM.int8 (Dettmers et al. 2022, Eq. 3) for a few rows: outlier columns by column amax, per-row
    codes of the rest, the exact integer product, epilogue, then ``Σ_{c∈O} x[i,c]·W[j,c]`` in float from
    the kept columns (or, for a column calibration never saw, its dequantized codes w_q[c, j]·s_w[j])."""
    m, k = x.shape
    n = w_t.shape[1]
    out = np.empty((m, n), np.float32)
    weight = np.ones(k, np.float32)
    cols = np.empty(k, np.int64)
    n_out = 0
    for j in range(k):
        cm = np.float32(0.0)
        for i in range(m):
            cm = max(cm, abs(x[i, j]))
        if cm >= threshold:
            weight[j] = 0.0
            cols[n_out] = j
            n_out += 1
    q = np.empty((m, k), np.int32)
    s = np.empty(m, np.float32)
    _quantize_rows(x, weight, 127, q, s, np.empty(LANES, np.float32))
    acc = np.zeros((m, n), np.int32)
    _int_product(q, w_t, acc)
    _epilogue(acc, s, sw, bias, out)
    for i in range(m):
        for c in range(n_out):
            col = cols[c]
            xv = x[i, col]
            r = col_slot[col]
            if r >= 0:
                for j in range(n):
                    out[i, j] += xv * w_o[r, j]
            else:
                for j in range(n):
                    out[i, j] += xv * (np.float32(w_t[col, j]) * sw[j])
    return out


def _x_np(x: torch.Tensor) -> np.ndarray:
    """A float32 C-contiguous (M × K) NumPy view of x (no copy in the usual case: a few µs matter here)."""
    if x.dtype is torch.float32 and x.dim() == 2 and x.is_contiguous():
        return x.detach().numpy()
    return _f32_2d(x).numpy()


def weight_views(w_t: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, *more: torch.Tensor) -> tuple:
    """NumPy views of a layer's tensors (CPU, contiguous), to keep between calls (``QuantLinear`` does)."""
    return tuple(t.detach().numpy() for t in (w_t, sw, bias, *more))


def w8a8_gemv(x: torch.Tensor, w_t, sw, bias, qmax: int) -> torch.Tensor:
    """Dynamic per-token W8A8 (or narrower) linear of a few rows: (M × K) float → (M × N) float32, one call.
    Bit-equal to ``int8_matmul.w8a8_matmul`` (same codes, same exact integer product, same epilogue).
    ``w_t``, ``sw``, ``bias``: tensors, or their :func:`weight_views`."""
    w_t, sw, bias = _views(w_t, sw, bias)
    return torch.from_numpy(_w8a8(_x_np(x), w_t, sw, bias, qmax))


def codes_gemv(q: torch.Tensor, sx: torch.Tensor, w_t, sw, bias) -> torch.Tensor:
    """``(q · W_q) ⊙ (s_x s_wᵀ) + b`` for activation codes already made (float32 M × K; static and tensor
    modes); ``sx`` (M,) per row or (1,) per tensor."""
    w_t, sw, bias = _views(w_t, sw, bias)
    return torch.from_numpy(_codes(q.numpy(), sx.detach().numpy(), w_t, sw, bias))


def llm_int8_gemv(x: torch.Tensor, w_t, sw, bias, threshold: float, col_slot, outlier_w_t) -> torch.Tensor:
    """LLM.int8 linear of a few rows in one call; same codes and integer product as
    ``int8_matmul.llm_int8_matmul`` (the float outlier sum may round in another order)."""
    w_t, sw, bias, col_slot, outlier_w_t = _views(w_t, sw, bias, col_slot, outlier_w_t)
    return torch.from_numpy(_llm_int8(_x_np(x), w_t, sw, bias, np.float32(threshold), col_slot, outlier_w_t))


def fused_kernel(act: str, views: tuple, qmax: int, threshold: float):
    """(compiled kernel, its arguments after x) of the one-call path for ``act`` ∈ {token, llm.int8}, for a
    caller that invokes it directly on a float32 (1 × K) NumPy row; ``views`` from :func:`weight_views`."""
    if act == "token":
        return _w8a8, (*views[:3], qmax)
    return _llm_int8, (*views[:3], np.float32(threshold), *views[3:])


def _views(*ts) -> tuple:
    return tuple(t if isinstance(t, np.ndarray) else t.detach().numpy() for t in ts)
