"""Fused dequant-matmul for weight-only quantized linears: ``y = x · Ŵᵀ + b`` without the float Ŵ.

Ŵ = (q − z)·s per (output row, group) (kernels/wo_format.py). Two paths:

- **decode** (M ≤ ``SMALL_M`` rows of x: GEMV-like, memory-bound): one numba loop nest, output rows
  split over threads. For each (row n, group j) it unpacks the g codes once into a g-float scratch
  (``q − z``, exact small integers), takes the dot product with each of the M input rows' slice and adds
  ``s·dot`` to the accumulators. The scratch stays in L1, so every weight byte is read from memory once
  per call: at 4 bits that is 4× less traffic than bf16 — where weight-only quantization pays.
- **tiled** (larger M: compute-bound): dequantize a tile of output rows into a small float buffer
  (fp32, or bf16 for bf16 activations, rounded to nearest even) and hand it to torch's GEMM
  (``torch.mm``), tile after tile; only one tile of floats (about ``TILE_BYTES``) exists at a time.

Inputs are fp32 or bf16 (fp16 is computed in fp32); the output has the input's dtype. The decode path
accumulates in fp32 whatever the input; the tiled path accumulates as torch's GEMM does for the dtype.
``wo_matmul_reference`` (dequantize, then ``F.linear``) is what the tests hold both paths to.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from scalinglab.kernels.wo_format import dequantize_groupwise

__all__ = ["SMALL_M", "TILE_BYTES", "wo_matmul", "wo_matmul_reference"]

SMALL_M = 16  # up to here the decode kernel; above, tiles + GEMM (benchmarks/weight_only.py measures both)
TILE_BYTES = 1 << 19  # float tile per GEMM call: 512 KiB stays in this CPU's 1 MiB L2
ROWS_PER_TASK = 16  # output rows per parallel task of the decode kernel

_JIT = dict(nogil=True, cache=True, fastmath=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def _half(h):  # pragma: no cover - compiled
    """float16 bits (as int16) → float32 value (finite inputs: scales are positive and finite)."""
    u = np.int32(h) & 0xFFFF
    e = (u >> 10) & 31
    m = u & 1023
    if e == 0:
        v = math.ldexp(np.float64(m), -24)  # subnormal
    else:
        v = math.ldexp(np.float64(m | 1024), e - 25)
    return np.float32(-v if u & 0x8000 else v)


@numba.njit(inline="always", **_JIT)
def _unpack_group(codes, n, j, g, bits, z, buf):  # pragma: no cover - compiled
    """buf[:g] = q[n, jg : jg+g] − z as float32."""
    if bits == 4:
        h = g // 2
        b0 = j * h
        for t in range(h):
            v = codes[n, b0 + t]
            buf[t] = np.float32(v & 15) - z
            buf[t + h] = np.float32(v >> 4) - z
    else:
        k0 = j * g
        for t in range(g):
            buf[t] = np.float32(codes[n, k0 + t]) - z


@numba.njit(parallel=True, **_JIT)
def _decode(x, codes, scales, zeros, bias, has_bias, bits, g, y):  # pragma: no cover - compiled
    m_rows, k = x.shape
    n_out, n_groups = scales.shape
    n_tasks = (n_out + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in numba.prange(n_tasks):
        buf = np.empty(g, np.float32)
        acc = np.empty(m_rows, np.float32)
        for n in range(task * ROWS_PER_TASK, min(n_out, (task + 1) * ROWS_PER_TASK)):
            acc[:] = 0.0
            for j in range(n_groups):
                s = _half(scales[n, j])
                _unpack_group(codes, n, j, g, bits, np.float32(zeros[n, j]), buf)
                k0 = j * g
                lim = min(g, k - k0)  # the last group may be padding past in_features
                for m in range(m_rows):
                    d = np.float32(0.0)
                    for t in range(lim):
                        d += x[m, k0 + t] * buf[t]
                    acc[m] += s * d
            for m in range(m_rows):
                y[m, n] = acc[m] + bias[n] if has_bias else acc[m]


@numba.njit(parallel=True, **_JIT)
def _dequant_rows_f32(codes, scales, zeros, bits, g, k, n0, out):  # pragma: no cover - compiled
    """out[r, :k] = Ŵ[n0 + r, :k] for r < out.shape[0] (float32)."""
    n_groups = scales.shape[1]
    for r in numba.prange(out.shape[0]):
        n = n0 + r
        buf = np.empty(g, np.float32)
        for j in range(n_groups):
            s = _half(scales[n, j])
            _unpack_group(codes, n, j, g, bits, np.float32(zeros[n, j]), buf)
            k0 = j * g
            for t in range(min(g, k - k0)):
                out[r, k0 + t] = buf[t] * s


@numba.njit(parallel=True, **_JIT)
def _dequant_rows_bf16(codes, scales, zeros, bits, g, k, n0, out):  # pragma: no cover - compiled
    """As :func:`_dequant_rows_f32` into bf16 bits (uint16), rounded to nearest even."""
    n_groups = scales.shape[1]
    for r in numba.prange(out.shape[0]):
        n = n0 + r
        buf = np.empty(g, np.float32)
        bits32 = buf.view(np.uint32)
        for j in range(n_groups):
            s = _half(scales[n, j])
            _unpack_group(codes, n, j, g, bits, np.float32(zeros[n, j]), buf)
            k0 = j * g
            lim = min(g, k - k0)
            for t in range(lim):
                buf[t] = buf[t] * s
            for t in range(lim):
                u = bits32[t]
                out[r, k0 + t] = np.uint16((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
                                           >> np.uint32(16))


def _check_shapes(x, codes, scales, zeros, bias, bits, g) -> None:
    """The compiled loops do not bounds-check: a mismatch here would read out of bounds."""
    n, n_groups = scales.shape
    kp = n_groups * g
    want_codes = (n, kp // 2 if bits == 4 else kp)
    if tuple(codes.shape) != want_codes or tuple(zeros.shape) != (n, n_groups) or x.shape[1] > kp \
            or (bias is not None and tuple(bias.shape) != (n,)) or (bits == 4 and g % 2):
        raise ValueError(f"weight-only buffers do not fit together: codes {tuple(codes.shape)}, scales "
                         f"{tuple(scales.shape)}, zeros {tuple(zeros.shape)}, x {tuple(x.shape)}, g={g}")
    if codes.dtype != torch.uint8 or zeros.dtype != torch.uint8 or scales.dtype != torch.float16:
        raise ValueError("weight-only buffers must be codes uint8, scales float16, zeros uint8")


def wo_matmul(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
              bias: torch.Tensor | None, bits: int, g: int, path: str | None = None) -> torch.Tensor:
    """``x · Ŵᵀ + b`` for x (M × K) fp32/bf16/fp16; returns (M × N) in x's dtype.

    ``codes``/``scales``/``zeros``: the stored format (kernels/wo_format.py), ``g`` the effective group
    length; ``path``: ``"decode"`` or ``"tiled"`` to pin one (default: decode for M ≤ SMALL_M)."""
    _check_shapes(x, codes, scales, zeros, bias, bits, g)
    m, k = x.shape
    n = scales.shape[0]
    dtype = x.dtype
    if path is None:
        path = "decode" if m <= SMALL_M else "tiled"
    if m == 0:
        return x.new_zeros(0, n)
    s16 = scales.view(torch.int16).numpy()
    c, z = codes.numpy(), zeros.numpy()
    if path == "decode":
        xf = x.detach().to(torch.float32).contiguous()
        y = torch.empty(m, n, dtype=torch.float32)
        b = bias.detach().to(torch.float32).contiguous() if bias is not None else torch.zeros(1)
        _decode(xf.numpy(), c, s16, z, b.numpy(), bias is not None, bits, g, y.numpy())
        return y if dtype == torch.float32 else y.to(dtype)
    if path != "tiled":
        raise ValueError(f"path must be 'decode' or 'tiled', got {path!r}")
    bf16 = dtype == torch.bfloat16
    cd = torch.bfloat16 if bf16 else torch.float32
    xc = x.detach().to(cd)
    rows = max(16, TILE_BYTES // (k * (2 if bf16 else 4)) // 16 * 16)
    rows = min(rows, n)
    tile = torch.empty(rows, k, dtype=torch.uint16 if bf16 else torch.float32)
    y_t = torch.empty(n, m, dtype=cd)  # Ŵ·xᵀ, so each tile's result is a contiguous block of rows
    xt = xc.t()
    for n0 in range(0, n, rows):
        nn_ = min(rows, n - n0)
        t = tile[:nn_]
        if bf16:
            _dequant_rows_bf16(c, s16, z, bits, g, k, n0, t.numpy())
            t = t.view(torch.bfloat16)
        else:
            _dequant_rows_f32(c, s16, z, bits, g, k, n0, t.numpy())
        torch.mm(t, xt, out=y_t[n0:n0 + nn_])
    y = y_t.t()
    y = y + bias.to(cd) if bias is not None else y.contiguous()
    return y if y.dtype == dtype else y.to(dtype)


def wo_matmul_reference(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                        bias: torch.Tensor | None, bits: int, g: int) -> torch.Tensor:
    """Plain torch: dequantize the whole weight to float32, then ``F.linear`` in float32."""
    w = dequantize_groupwise(codes, scales, zeros, bits, g, x.shape[1])
    b = None if bias is None else bias.float()
    return torch.nn.functional.linear(x.float(), w, b)
