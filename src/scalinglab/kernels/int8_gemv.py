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

Exactness: products of codes |x_q|, |w_q| ≤ 127 are integers ≤ 127² = 16,129; a float32 adds integers
exactly while every partial sum stays below 2^24, i.e. over any KC = 1,024 consecutive terms
(1,024·16,129 < 2^24). The loop accumulates in float32 (which vectorises on AVX2 and AVX-512 as one
convert and one FMA per lane) over chunks of KC inputs and carries the chunks' sums in int32, so the
accumulator is the exact integer ``Σ_k x_q[k]·w_q[k, j]`` — the same number ``torch._int_mm`` returns,
and the epilogue is the same float32 expression, so this path is bit-equal to the ``int_mm`` path.

Several rows are handled with the weight row reused across them (loop k outer, rows inner), so the
same kernel serves small batches; whether it wins there is the calibration's business (hw/).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from scalinglab.kernels.int8_matmul import _JIT, _MAGIC, LANES, _f32_2d, _row_amax

__all__ = ["w8a8_gemv", "llm_int8_gemv", "codes_gemv", "KC"]

KC = 1024  # inputs per float32 chunk: KC·127² < 2^24, so every partial sum is an exact integer


@numba.njit(inline="always", **_JIT)
def _product(q, w_t, acc, acc_f, wf):  # pragma: no cover - compiled
    """acc (M × N) int32 = q (M × K, float codes) · w_t (K × N int8), exact (see the module docstring)."""
    m, k = q.shape
    n = w_t.shape[1]
    for k0 in range(0, k, KC):
        k1 = min(k, k0 + KC)
        acc_f[:, :] = 0.0
        for kk in range(k0, k1):
            for j in range(n):
                wf[j] = np.float32(w_t[kk, j])
            for i in range(m):
                xv = q[i, kk]
                if xv != 0.0:
                    for j in range(n):
                        acc_f[i, j] += xv * wf[j]
        for i in range(m):
            for j in range(n):
                acc[i, j] += np.int32(acc_f[i, j])


@numba.njit(inline="always", **_JIT)
def _product_one(q, w_t, acc, acc_f):  # pragma: no cover - compiled
    """The M = 1 case of :func:`_product`: four weight rows per pass over the accumulator."""
    k = q.shape[1]
    n = w_t.shape[1]
    for k0 in range(0, k, KC):
        k1 = min(k, k0 + KC)
        acc_f[0, :] = 0.0
        kk = k0
        while kk + 4 <= k1:
            x0, x1, x2, x3 = q[0, kk], q[0, kk + 1], q[0, kk + 2], q[0, kk + 3]
            for j in range(n):
                acc_f[0, j] += ((x0 * np.float32(w_t[kk, j]) + x1 * np.float32(w_t[kk + 1, j]))
                                + (x2 * np.float32(w_t[kk + 2, j]) + x3 * np.float32(w_t[kk + 3, j])))
            kk += 4
        while kk < k1:
            x0 = q[0, kk]
            for j in range(n):
                acc_f[0, j] += x0 * np.float32(w_t[kk, j])
            kk += 1
        for j in range(n):
            acc[0, j] += np.int32(acc_f[0, j])


@numba.njit(inline="always", **_JIT)
def _int_product(q, w_t, acc):  # pragma: no cover - compiled
    m = q.shape[0]
    n = w_t.shape[1]
    acc_f = np.empty((m, n), np.float32)
    if m == 1:
        _product_one(q, w_t, acc, acc_f)
    else:
        _product(q, w_t, acc, acc_f, np.empty(n, np.float32))


@numba.njit(inline="always", **_JIT)
def _epilogue(acc, sx, sw, bias, out):  # pragma: no cover - compiled
    m, n = acc.shape
    per_row = sx.shape[0] > 1
    for i in range(m):
        si = sx[i] if per_row else sx[0]
        for j in range(n):
            out[i, j] = np.float32(acc[i, j]) * (si * sw[j]) + bias[j]


@numba.njit(**_JIT)
def _w8a8(x, w_t, sw, bias, qmax, out):  # pragma: no cover - compiled
    m, k = x.shape
    q = np.empty((m, k), np.float32)
    s = np.empty(m, np.float32)
    ones = np.ones(k, np.float32)
    lanes = np.empty(LANES, np.float32)
    for i in range(m):
        amax = _row_amax(x, i, ones, lanes)
        sc = amax / np.float32(qmax) if amax > 0 else np.float32(1.0)
        s[i] = sc
        inv = np.float32(1.0) / sc
        for j in range(k):
            q[i, j] = ((x[i, j] * inv + _MAGIC) - _MAGIC)
    acc = np.zeros(out.shape, np.int32)
    _int_product(q, w_t, acc)
    _epilogue(acc, s, sw, bias, out)


@numba.njit(**_JIT)
def _codes(q, sx, w_t, sw, bias, out):  # pragma: no cover - compiled
    acc = np.zeros(out.shape, np.int32)
    _int_product(q, w_t, acc)
    _epilogue(acc, sx, sw, bias, out)


@numba.njit(**_JIT)
def _llm_int8(x, w_t, sw, bias, threshold, col_slot, w_o, out):  # pragma: no cover - compiled
    """LLM.int8 (Dettmers et al. 2022, Eq. 3) for a few rows: outlier columns by column amax, per-row
    codes of the rest, the exact integer product, epilogue, then ``Σ_{c∈O} x[i,c]·W[j,c]`` in float from
    the kept columns (or, for a column calibration never saw, its dequantized codes w_q[c, j]·s_w[j])."""
    m, k = x.shape
    n = w_t.shape[1]
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
    q = np.empty((m, k), np.float32)
    s = np.empty(m, np.float32)
    lanes = np.empty(LANES, np.float32)
    for i in range(m):
        amax = _row_amax(x, i, weight, lanes)
        sc = amax / np.float32(127) if amax > 0 else np.float32(1.0)
        s[i] = sc
        inv = np.float32(1.0) / sc
        for j in range(k):
            q[i, j] = (((x[i, j] * weight[j]) * inv + _MAGIC) - _MAGIC)
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


def w8a8_gemv(x: torch.Tensor, w_t: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, qmax: int) -> torch.Tensor:
    """Dynamic per-token W8A8 (or narrower) linear of a few rows: (M × K) float → (M × N) float32, one call.
    Bit-equal to ``int8_matmul.w8a8_matmul`` (same codes, same exact integer product, same epilogue)."""
    x = _f32_2d(x)
    out = torch.empty(x.shape[0], w_t.shape[1], dtype=torch.float32)
    _w8a8(x.numpy(), w_t.numpy(), sw.numpy(), bias.numpy(), qmax, out.numpy())
    return out


def codes_gemv(q: torch.Tensor, sx: torch.Tensor, w_t: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``(q · W_q) ⊙ (s_x s_wᵀ) + b`` for activation codes already made (float32 M × K; static and tensor
    modes); ``sx`` (M,) per row or (1,) per tensor."""
    out = torch.empty(q.shape[0], w_t.shape[1], dtype=torch.float32)
    _codes(q.numpy(), sx.numpy(), w_t.numpy(), sw.numpy(), bias.numpy(), out.numpy())
    return out


def llm_int8_gemv(x: torch.Tensor, w_t: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, threshold: float,
                  col_slot: torch.Tensor, outlier_w_t: torch.Tensor) -> torch.Tensor:
    """LLM.int8 linear of a few rows in one call; same codes and integer product as
    ``int8_matmul.llm_int8_matmul`` (the float outlier sum may round in another order)."""
    x = _f32_2d(x)
    out = torch.empty(x.shape[0], w_t.shape[1], dtype=torch.float32)
    _llm_int8(x.numpy(), w_t.numpy(), sw.numpy(), bias.numpy(), np.float32(threshold), col_slot.numpy(),
              outlier_w_t.numpy(), out.numpy())
    return out
