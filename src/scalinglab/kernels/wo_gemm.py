"""Fused dequant-matmul for weight-only quantized linears: ``y = x · Ŵᵀ + b`` without the float Ŵ.

Ŵ = (q − z)·s per (output row, group) (kernels/wo_format.py). Two paths:

- **decode** (M ≤ ``SMALL_M`` = 8 rows of x, or ≤ ``SMALL_M_BF16`` = 3 where tiles would be bf16:
  GEMV-like, memory-bound), numba, output rows split over threads. M = 1: per (row n, group j)
  ``Σ_t x_t·(q_t − z)`` straight from the packed bytes (two contiguous runs of x per byte vector at 4
  bits), times s — every weight byte is read once, a quarter of bf16's traffic at 4 bits, which is
  where weight-only quantization pays. M ≥ 2: two output rows are unpacked to floats in L1 and dotted
  with four input rows at a time (each x load feeds two FMAs, each weight load four), one reduction
  per (row, input) instead of one per group.
- **tiled** (larger M: compute-bound): dequantize a tile of output rows into a small float buffer
  (fp32, or bf16 for bf16 activations on CPUs with native bf16 products, rounded to nearest even) and
  hand it to torch's GEMM (``torch.mm``, as x·tileᵀ), tile after tile; only one tile of floats (at most
  ``TILE_BYTES`` = 4 MiB) exists at a time. Each GEMM call has a cost of its own that L2-sized tiles
  did not win back (measured: 4 MiB tiles 1.3–1.6× faster than 512 KiB ones at M = 16), so tiles are
  few and large.

Between M = 2 and 16 neither path wins everywhere: :func:`wo_matmul` times both on the first call for
each shape and M and keeps the faster for the process.

Inputs are fp32 or bf16 (fp16 is computed in fp32); the output has the input's dtype. The decode path
accumulates in fp32 whatever the input; the tiled path accumulates as torch's GEMM does for the dtype.
``wo_matmul_reference`` (dequantize, then ``F.linear``) is what the tests hold both paths to.
"""

from __future__ import annotations

import functools
import math
import time

import numba
import numpy as np
import torch

from scalinglab.kernels.wo_format import dequantize_groupwise

__all__ = ["SMALL_M", "SMALL_M_BF16", "TILE_BYTES", "PROBE_M", "wo_matmul", "wo_matmul_reference"]

SMALL_M = 8  # up to here the decode kernels; above, fp32 tiles + GEMM (measured: decode ahead at M = 8, tiles at 16)
SMALL_M_BF16 = 3  # the same where tiles are bf16 (native bf16 GEMM): tiles measured ahead from M = 4
PROBE_M = (2, 16)  # in this band of M the path is measured per shape (below); outside it, the rule above
PROBE_REPS = 5  # calls per path, interleaved; the best counts (the first may load compiled code)
TILE_BYTES = 1 << 22  # float tile per GEMM call: measured 1.3–1.6× faster than 512 KiB tiles at M = 16
ROWS_PER_TASK = 16  # output rows per parallel task of the decode kernel

_JIT = dict(nogil=True, cache=True, fastmath=True, error_model="numpy")


@numba.njit(inline="always", **_JIT)
def _row_scales(srow, sb, sf):  # pragma: no cover - compiled
    """One row of float16 steps (int16 bits) → float32 in ``sf`` (``sb``: its uint32 view). Normal
    halves re-bias the exponent (15 → 127) in the bit pattern; subnormals are m·2⁻²⁴. Steps are positive."""
    for j in range(srow.shape[0]):
        h = np.uint32(srow[j]) & np.uint32(0x7FFF)
        sb[j] = (h << np.uint32(13)) + np.uint32(0x38000000)
    for j in range(srow.shape[0]):
        h = np.uint32(srow[j]) & np.uint32(0x7FFF)
        if h < np.uint32(0x400):
            sf[j] = np.float32(h) * np.float32(5.9604645e-08)


@numba.njit(inline="always", **_JIT)
def _unpack_row(crow, zrow, sf, bits, g, out):  # pragma: no cover - compiled
    """out[:K_pad] = Ŵ[n, :] = (q − z)·s for one output row (codes ``crow``, zero points ``zrow``)."""
    h = g // 2
    for j in range(zrow.shape[0]):
        z = np.float32(zrow[j])
        s = sf[j]
        if bits == 4:
            cg = crow[j * h:(j + 1) * h]
            lo = out[j * g:j * g + h]
            hi = out[j * g + h:(j + 1) * g]
            for t in range(h):
                v = cg[t]
                lo[t] = (np.float32(v & 15) - z) * s
                hi[t] = (np.float32(v >> 4) - z) * s
        else:
            cg = crow[j * g:(j + 1) * g]
            og = out[j * g:(j + 1) * g]
            for t in range(g):
                og[t] = (np.float32(cg[t]) - z) * s


@numba.njit(parallel=True, **_JIT)
def _gemv(x, codes, scales, zeros, bias, has_bias, bits, g, y):  # pragma: no cover - compiled
    """M = 1: per (row, group) Σ_t x_t·(q_t − z) straight from the packed bytes, times s; no scratch."""
    xr = x[0]
    n_out, n_groups = scales.shape
    h = g // 2
    n_tasks = (n_out + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in numba.prange(n_tasks):
        sb = np.empty(n_groups, np.uint32)
        sf = sb.view(np.float32)
        for n in range(task * ROWS_PER_TASK, min(n_out, (task + 1) * ROWS_PER_TASK)):
            _row_scales(scales[n], sb, sf)
            crow, zrow = codes[n], zeros[n]
            acc = np.float32(0.0)
            for j in range(n_groups):
                z = np.float32(zrow[j])
                d = np.float32(0.0)
                if bits == 4:
                    cg = crow[j * h:(j + 1) * h]
                    xl = xr[j * g:j * g + h]
                    xh = xr[j * g + h:(j + 1) * g]
                    for t in range(h):
                        v = cg[t]
                        d += xl[t] * (np.float32(v & 15) - z) + xh[t] * (np.float32(v >> 4) - z)
                else:
                    cg = crow[j * g:(j + 1) * g]
                    xg = xr[j * g:(j + 1) * g]
                    for t in range(g):
                        d += xg[t] * (np.float32(cg[t]) - z)
                acc += sf[j] * d
            y[0, n] = acc + bias[n] if has_bias else acc


@numba.njit(parallel=True, **_JIT)
def _gemm_small(x, codes, scales, zeros, bias, has_bias, bits, g, y):  # pragma: no cover - compiled
    """M ≥ 2 (decode path): unpack two output rows to floats (L1-resident), then dot them with the input
    rows four at a time — each loaded x value feeds two FMAs, each weight value four."""
    m_rows, kp = x.shape
    n_out, n_groups = scales.shape
    n_tasks = (n_out + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in numba.prange(n_tasks):
        sb = np.empty(n_groups, np.uint32)
        sf = sb.view(np.float32)
        wa = np.empty(kp, np.float32)
        wb = np.empty(kp, np.float32)
        n_end = min(n_out, (task + 1) * ROWS_PER_TASK)
        for n in range(task * ROWS_PER_TASK, n_end, 2):
            pair = n + 1 < n_end
            _row_scales(scales[n], sb, sf)
            _unpack_row(codes[n], zeros[n], sf, bits, g, wa)
            if pair:
                _row_scales(scales[n + 1], sb, sf)
                _unpack_row(codes[n + 1], zeros[n + 1], sf, bits, g, wb)
            else:
                wb[:] = 0.0
            m = 0
            while m < m_rows:
                # rows past M repeat the last one: same work, results discarded
                x0 = x[m]
                x1 = x[min(m + 1, m_rows - 1)]
                x2 = x[min(m + 2, m_rows - 1)]
                x3 = x[min(m + 3, m_rows - 1)]
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                b0 = np.float32(0.0)
                b1 = np.float32(0.0)
                b2 = np.float32(0.0)
                b3 = np.float32(0.0)
                for t in range(kp):
                    p, q = wa[t], wb[t]
                    u0, u1, u2, u3 = x0[t], x1[t], x2[t], x3[t]
                    a0 += u0 * p
                    a1 += u1 * p
                    a2 += u2 * p
                    a3 += u3 * p
                    b0 += u0 * q
                    b1 += u1 * q
                    b2 += u2 * q
                    b3 += u3 * q
                ba = bias[n] if has_bias else np.float32(0.0)
                bb = bias[n + 1] if has_bias and pair else np.float32(0.0)
                for i, (va, vb) in enumerate(((a0, b0), (a1, b1), (a2, b2), (a3, b3))):
                    if m + i < m_rows:
                        y[m + i, n] = va + ba
                        if pair:
                            y[m + i, n + 1] = vb + bb
                m += 4


@numba.njit(parallel=True, **_JIT)
def _dequant_rows_f32(codes, scales, zeros, bits, g, n0, out):  # pragma: no cover - compiled
    """out[r] = Ŵ[n0 + r] (K_pad floats) for r < out.shape[0]."""
    n_groups = scales.shape[1]
    for r in numba.prange(out.shape[0]):
        sb = np.empty(n_groups, np.uint32)
        _row_scales(scales[n0 + r], sb, sb.view(np.float32))
        _unpack_row(codes[n0 + r], zeros[n0 + r], sb.view(np.float32), bits, g, out[r])


@numba.njit(parallel=True, **_JIT)
def _dequant_rows_bf16(codes, scales, zeros, bits, g, n0, out):  # pragma: no cover - compiled
    """As :func:`_dequant_rows_f32` into bf16 bits (uint16), rounded to nearest even."""
    n_groups, kp = scales.shape[1], out.shape[1]
    for r in numba.prange(out.shape[0]):
        sb = np.empty(n_groups, np.uint32)
        _row_scales(scales[n0 + r], sb, sb.view(np.float32))
        row = np.empty(kp, np.float32)
        _unpack_row(codes[n0 + r], zeros[n0 + r], sb.view(np.float32), bits, g, row)
        u = row.view(np.uint32)
        o = out[r]
        for t in range(kp):
            o[t] = np.uint16((u[t] + np.uint32(0x7FFF) + ((u[t] >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


@functools.cache
def _fast_bf16_gemm() -> bool:
    """bf16 tiles only where the CPU multiplies bf16 natively (AVX-512 BF16 / AMX); without it, oneDNN's
    bf16 GEMM measured 3–4× slower than fp32 at M = 256 (AVX2 emulation), so tiles are fp32 there."""
    from scalinglab.hw.capabilities import detect

    cap = detect()
    return cap.has("avx512_bf16") or cap.has("amx_bf16")


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


_chosen: dict[tuple, str] = {}  # measured path per (format, shape, M, tile dtype, threads), this process


def _probe(run) -> tuple[str, torch.Tensor]:
    """Time ``run(path)`` for both paths, PROBE_REPS calls each, interleaved so load drifts hit both;
    return the path with the shorter best call and that call's output."""
    best, out = {"decode": math.inf, "tiled": math.inf}, {}
    for _ in range(PROBE_REPS):
        for p in best:
            t0 = time.perf_counter()
            out[p] = run(p)
            best[p] = min(best[p], time.perf_counter() - t0)
    p = min(best, key=best.get)
    return p, out[p]


def wo_matmul(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
              bias: torch.Tensor | None, bits: int, g: int, path: str | None = None) -> torch.Tensor:
    """``x · Ŵᵀ + b`` for x (M × K) fp32/bf16/fp16; returns (M × N) in x's dtype.

    ``codes``/``scales``/``zeros``: the stored format (kernels/wo_format.py), ``g`` the effective group
    length; ``path``: ``"decode"`` or ``"tiled"`` to pin one. Default: M = 1 decodes and M > 16 tiles;
    in between, the first call for each (format, shape, M, tile dtype, thread counts) times both paths
    (:func:`_probe`) and the faster serves the rest of the process — their crossover moved from M = 4 to
    M > 16 with the layer's shape and the CPU in our measurements. Before that first call, or for M
    outside the band: decode for M ≤ SMALL_M, or ≤ SMALL_M_BF16 where the tiles would be bf16."""
    _check_shapes(x, codes, scales, zeros, bias, bits, g)
    m, k = x.shape
    n, n_groups = scales.shape
    kp = n_groups * g
    dtype = x.dtype
    bf16 = dtype == torch.bfloat16 and _fast_bf16_gemm()
    if path is None:
        if PROBE_M[0] <= m <= PROBE_M[1]:
            key = (bits, g, n, kp, m, bf16, torch.get_num_threads(), numba.get_num_threads())
            path = _chosen.get(key)
            if path is None:
                path, y = _probe(lambda p: wo_matmul(x, codes, scales, zeros, bias, bits, g, path=p))
                _chosen[key] = path
                return y
        else:
            path = "decode" if m <= (SMALL_M_BF16 if bf16 else SMALL_M) else "tiled"
    if path not in ("decode", "tiled"):
        raise ValueError(f"path must be 'decode' or 'tiled', got {path!r}")
    if m == 0:
        return x.new_zeros(0, n)
    s16 = scales.view(torch.int16).numpy()
    c, z = codes.numpy(), zeros.numpy()
    if path == "decode":
        xf = x.detach().to(torch.float32)
        xf = torch.nn.functional.pad(xf, (0, kp - k)) if kp != k else xf.contiguous()  # padded weights are 0
        y = torch.empty(m, n, dtype=torch.float32)
        b = bias.detach().to(torch.float32).contiguous() if bias is not None else torch.zeros(1)
        kernel = _gemv if m == 1 else _gemm_small
        kernel(xf.numpy(), c, s16, z, b.numpy(), bias is not None, bits, g, y.numpy())
        return y if dtype == torch.float32 else y.to(dtype)
    cd = torch.bfloat16 if bf16 else torch.float32
    xc = x.detach().to(cd)
    if kp != k:
        xc = torch.nn.functional.pad(xc, (0, kp - k))
    rows = min(n, max(16, TILE_BYTES // (kp * (2 if bf16 else 4)) // 16 * 16))
    tile = torch.empty(rows, kp, dtype=torch.uint16 if bf16 else torch.float32)
    y = torch.empty(m, n, dtype=cd)
    part = torch.empty(m, rows, dtype=cd)  # x·tileᵀ: torch's GEMM measured faster this way round
    for n0 in range(0, n, rows):
        nn_ = min(rows, n - n0)
        t = tile[:nn_]
        if bf16:
            _dequant_rows_bf16(c, s16, z, bits, g, n0, t.numpy())
            t = t.view(torch.bfloat16)
        else:
            _dequant_rows_f32(c, s16, z, bits, g, n0, t.numpy())
        if nn_ == n:
            torch.mm(xc, t.t(), out=y)
        else:
            torch.mm(xc, t.t(), out=part[:, :nn_])
            y[:, n0:n0 + nn_] = part[:, :nn_]
    if bias is not None:
        y += bias.to(cd)
    return y if y.dtype == dtype else y.to(dtype)


def wo_matmul_reference(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                        bias: torch.Tensor | None, bits: int, g: int) -> torch.Tensor:
    """Plain torch: dequantize the whole weight to float32, then ``F.linear`` in float32."""
    w = dequantize_groupwise(codes, scales, zeros, bits, g, x.shape[1])
    b = None if bias is None else bias.float()
    return torch.nn.functional.linear(x.float(), w, b)
