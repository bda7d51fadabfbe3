"""Quantized linears in plain torch ops: the path ``QuantLinear`` takes on CUDA (and any non-CPU device).

The CPU path (kernels/int8_matmul.py) runs numba loops over host memory; on a GPU the same math is
written in torch ops so the int8 × int8 → int32 product goes to ``torch._int_mm`` (cuBLASLt's int8
GEMM, the int8 tensor cores) and everything around it stays on the device:

    X_q = round(X / s_x),  s_x = amax_row(X) / qmax      (token mode; tensor / static modes below)
    Y   = (X_q · W_q) ⊙ (s_x s_wᵀ) + b                    (Dettmers et al. 2022, Eq. 3; /127² inside the scales)

Fusion: done eagerly, the activation quantization is four passes over X (abs, amax, scale, round+cast)
and the dequantization three over the int32 accumulator (cast, two scalings, bias). With ``FUSE`` on,
both are compiled by ``torch.compile`` (Inductor), which emits one kernel for the row amax + codes and
one for the epilogue, the cuBLAS int8 GEMM staying in between; ``benchmarks/gpu_check.py`` times fused
against eager and against a bf16 ``F.linear`` (docs/gpu.md). LLM.int8's outlier columns are found at run
time (data-dependent shapes), so that mode runs eagerly.

``torch._int_mm`` on CUDA needs more than 16 rows and K, N multiples of 8: fewer rows are zero-padded
(exact: padded rows are dropped), other K, N fall back to an exact float64 product.

Weight layout: the CPU path stores W_q transposed and contiguous (K × N, N fastest), the layout oneDNN's
VNNI kernel reads fastest. cuBLASLt's int8 GEMM wants both operands K-contiguous ("TN"); given an
N-contiguous right operand it takes a much slower kernel (gpu_check on an H200: docs/gpu.md). On its
first CUDA call a layer therefore re-lays its ``w_t`` out K-contiguous (same shape, strides (1, K)), and
``QuantLinear`` writes it back contiguous when saved.
"""

from __future__ import annotations

import os

import torch

__all__ = ["quant_linear", "int_mm", "quantize_rows", "dequantize", "gemm_weight", "CUDA_MIN_ROWS", "FUSE",
           "K_MAJOR_ON_CUDA"]

CUDA_MIN_ROWS = 17  # torch._int_mm on CUDA: "self.size(0) needs to be greater than 16"
PAD_ROWS = 32
# torch.compile the quantize and dequantize steps on CUDA ("0" to run them eagerly, e.g. to compare).
FUSE = os.environ.get("SCALINGLAB_INT8_FUSE", "1") == "1"
K_MAJOR_ON_CUDA = True  # re-lay W_q out K-contiguous for cuBLASLt (see the module docstring)


def _pad_needed(xq: torch.Tensor) -> bool:
    return xq.device.type == "cuda" and xq.shape[0] < CUDA_MIN_ROWS


def int_mm(xq: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    """int8 (M × K) · int8 (K × N) → int32 (M × N) through ``torch._int_mm``, whatever M, K, N."""
    m, k = xq.shape
    n = w_t.shape[1]
    if k % 8 or n % 8:  # cuBLASLt int8 layout rule; |acc| ≤ K·127² is exact in float64
        return (xq.double() @ w_t.double()).to(torch.int32)
    if _pad_needed(xq):
        padded = xq.new_zeros(PAD_ROWS, k)
        padded[:m] = xq
        return torch._int_mm(padded, w_t)[:m]
    return torch._int_mm(xq, w_t)


def _relayout_wanted(w: torch.Tensor) -> bool:
    return K_MAJOR_ON_CUDA and w.device.type == "cuda" and w.stride(0) != 1 and w.shape[1] > 1


def gemm_weight(m) -> torch.Tensor:
    """``m.w_t`` in the layout the device's int8 GEMM reads fastest (re-laid out once, in place, on CUDA)."""
    w = m.w_t
    if _relayout_wanted(w):
        m.w_t = w = w.t().contiguous().t()  # (K, N) with strides (1, K): W_q (N × K) row-major underneath
    return w


def quantize_rows(x: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row absmax codes and scales; a zero row gets scale 1 (codes 0). Rounds half to even, like the
    CPU kernel, and multiplies by the reciprocal scale as it does."""
    amax = x.abs().amax(dim=1)
    s = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.round(x * (1.0 / s)[:, None]).to(torch.int8), s


def quantize_tensor(x: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    amax = x.abs().amax()
    s = torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).reshape(1)
    return torch.round(x * (1.0 / s)).to(torch.int8), s


def quantize_channels(x: torch.Tensor, shift: torch.Tensor, inv_step: torch.Tensor, qmax: int) -> torch.Tensor:
    return torch.round(torch.clamp((x - shift) * inv_step, -qmax, qmax)).to(torch.int8)


def dequantize(acc: torch.Tensor, sx: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``acc · s_x[i] · s_w[j] + b[j]``; ``sx`` is (M,) per row or (1,) per tensor."""
    return acc.float() * (sx.reshape(-1, 1) * sw) + bias


_COMPILED: dict = {}


def _maybe_fused(fn):
    """``fn`` compiled with Inductor on CUDA when ``FUSE`` is on (once per function), else ``fn``."""
    if not FUSE:
        return fn
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def quant_linear(m, x2: torch.Tensor) -> torch.Tensor:
    """Forward of a ``QuantLinear`` ``m`` on a (M × K) input on its device → (M × N) float32."""
    x2 = x2.float()
    fuse = x2.device.type == "cuda"
    q_rows = _maybe_fused(quantize_rows) if fuse else quantize_rows
    q_tensor = _maybe_fused(quantize_tensor) if fuse else quantize_tensor
    q_channels = _maybe_fused(quantize_channels) if fuse else quantize_channels
    deq = _maybe_fused(dequantize) if fuse else dequantize
    qmax = m.qmax_a
    if m.act == "token":
        xq, sx = q_rows(x2, qmax)
    elif m.act == "tensor":
        xq, sx = q_tensor(x2, qmax)
    elif m.act == "static":
        xq, sx = q_channels(x2, m.act_shift, m.act_inv_step, qmax), m.act_scale
    else:
        return _llm_int8(m, x2)
    return deq(int_mm(xq, gemm_weight(m)), sx, m.w_scale, m.bias)


def _llm_int8(m, x: torch.Tensor) -> torch.Tensor:
    """LLM.int8() decomposition (kernels/int8_matmul.py has the CPU form and the paper reference)."""
    outlier = x.abs().amax(dim=0) >= m.threshold
    xq, sx = quantize_rows(x * (~outlier), 127)
    y = dequantize(int_mm(xq, gemm_weight(m)), sx, m.w_scale, m.bias)
    cols = outlier.nonzero().squeeze(1)
    if cols.numel():
        slot = m.col_slot[cols].long()
        w_o = m.w_t[cols].float() * m.w_scale  # dequantized fallback for dims never seen at calibration
        kept = slot >= 0
        if bool(kept.any()):
            w_o[kept] = m.outlier_w_t[slot[kept]]
        y.addmm_(x[:, cols], w_o)
    return y
