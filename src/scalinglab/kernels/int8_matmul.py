"""Integer matmul for quantized linears: fused activation quantization, ``torch._int_mm``, fused dequant.

A quantized linear spends its time in three places: quantizing X (tokens × in) to int8, the
int8 × int8 → int32 product, and turning the int32 accumulator back into floats. On a VNNI CPU the
product is ~2× faster than bf16, so the two elementwise steps must stay cheap: done in eager torch they
take 4–5 passes over memory each (abs, amax, div, round, cast / cast, mul, mul, add) and eat most of
the gain. Here each is one numba loop nest: the row quantizer reads a row twice while it sits in cache
(amax, then codes), and the epilogue reads the int32 accumulator once and writes
``acc · s_x[i] · s_w[j] + b[j]`` (Dettmers et al. 2022, Eq. 3: the ``/127²`` is inside the scales).

LLM.int8() (ibid., Sec. 3.2) adds the mixed-precision decomposition: columns of X holding any
``|x| ≥ threshold`` are found by a column amax over the token dim, zeroed in the int8 product and
multiplied in floating point: ``Y = (X_q·W_qᵀ) ⊙ (s_x s_wᵀ) + X[:,O]·W[:,O]ᵀ + b``. The float weight
columns of outlier dims seen at calibration are kept (the original weights); a column never seen
before falls back to its dequantized int8 weights, as bitsandbytes does in inference mode.

Every kernel has a plain-torch reference (``*_reference``) that tests compare against.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import torch

__all__ = [
    "quantize_rows",
    "quantize_channels",
    "column_amax",
    "int_mm",
    "dequantize_epilogue",
    "w8a8_matmul",
    "llm_int8_matmul",
    "add_outlier_product_",
    "quantize_rows_reference",
    "quantize_channels_reference",
    "llm_int8_matmul_reference",
]

_JIT = dict(nogil=True, cache=True, error_model="numpy")
# Rows are independent: split them over numba's threads (prange). 1.5·2^23 added and subtracted rounds a
# float32 of magnitude < 2^22 half-to-even to an integer — what np.rint does, in a form that vectorises.
_MAGIC = np.float32(12582912.0)
# Serial by default: numba's thread pool and torch's OpenMP pool spin-wait against each other, and on a
# small machine that costs more (measured 2–3× slower layers on 2 cores) than the elementwise passes gain.
_PARALLEL = os.environ.get("SCALINGLAB_NUMBA_PARALLEL", "0") == "1"


LANES = 16  # independent running maxima: a single one is a loop-carried chain that will not vectorise


@numba.njit(**_JIT)
def _row_amax(x, i, weight, acc):  # pragma: no cover - compiled
    """max_j |x[i, j]|·weight[j] with LANES partial maxima (weight: 1, or 0 to leave a column out)."""
    k = x.shape[1]
    kk = k - k % LANES
    acc[:] = 0
    for j0 in range(0, kk, LANES):
        for lane in range(LANES):
            v = abs(x[i, j0 + lane]) * weight[j0 + lane]
            acc[lane] = v if v > acc[lane] else acc[lane]
    amax = np.float32(0.0)
    for lane in range(LANES):
        amax = max(amax, acc[lane])
    for j in range(kk, k):
        amax = max(amax, abs(x[i, j]) * weight[j])
    return amax


@numba.njit(inline="always", **_JIT)
def _quantize_rows(x, weight, qmax, q, s, lanes):  # pragma: no cover - compiled
    """Per-row symmetric codes of x·weight: s[i] = amax_i / qmax, q[i, j] = round(x[i, j]·weight[j] / s[i])
    (round half to even through the magic constant; an all-zero row gets s = 1)."""
    for i in range(x.shape[0]):
        amax = _row_amax(x, i, weight, lanes)
        sc = amax / np.float32(qmax) if amax > 0 else np.float32(1.0)
        s[i] = sc
        inv = np.float32(1.0) / sc
        for j in range(x.shape[1]):
            q[i, j] = np.int32(((x[i, j] * weight[j]) * inv + _MAGIC) - _MAGIC)


@numba.njit(parallel=_PARALLEL, **_JIT)
def _quant_rows(x, qmax, weight, q, s):  # pragma: no cover - compiled
    m, k = x.shape
    for i in numba.prange(m):
        acc = np.empty(LANES, np.float32)
        amax = _row_amax(x, i, weight, acc)  # weight[j]: 0 for an outlier column, else 1
        sc = amax / np.float32(qmax) if amax > 0 else np.float32(1.0)
        s[i] = sc
        inv = np.float32(1.0) / sc
        for j in range(k):
            q[i, j] = np.int32(((x[i, j] * weight[j]) * inv + _MAGIC) - _MAGIC)


@numba.njit(parallel=_PARALLEL, **_JIT)
def _quant_channels(x, shift, inv_step, qmax, q):  # pragma: no cover - compiled
    m, k = x.shape
    hi = np.float32(qmax)
    for i in numba.prange(m):
        for j in range(k):
            v = min(max((x[i, j] - shift[j]) * inv_step[j], -hi), hi)  # saturate before rounding
            q[i, j] = np.int32((v + _MAGIC) - _MAGIC)


@numba.njit(**_JIT)
def _col_amax(x, out):  # pragma: no cover - compiled
    m, k = x.shape
    for j in range(k):
        out[j] = 0.0
    for i in range(m):
        for j in range(k):
            out[j] = max(out[j], abs(x[i, j]))


@numba.njit(inline="always", **_JIT)
def _dequant_body(acc, sx, sw, bias, out):  # pragma: no cover - compiled
    m, n = acc.shape
    per_row = sx.shape[0] > 1
    for i in numba.prange(m):
        si = sx[i] if per_row else sx[0]
        for j in range(n):
            out[i, j] = np.float32(acc[i, j]) * (si * sw[j]) + bias[j]


@numba.njit(parallel=_PARALLEL, **_JIT)
def _dequant(acc, sx, sw, bias, out):  # pragma: no cover - compiled
    _dequant_body(acc, sx, sw, bias, out)


@numba.njit(parallel=_PARALLEL, **_JIT)
def _dequant_inplace(acc, sx, sw, bias):  # pragma: no cover - compiled
    # the same memory under a float32 view: inlined, LLVM sees one base and the loop still vectorises
    _dequant_body(acc, sx, sw, bias, acc.view(np.float32))


def _f32_2d(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(-1, x.shape[-1]).to(torch.float32).contiguous()


def quantize_rows(x: torch.Tensor, qmax: int, skip: torch.Tensor | None = None,
                  out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-row absmax quantization of a (M × K) float32 matrix; columns with ``skip`` set are
    left out of the amax and coded 0 (LLM.int8's outlier columns). Returns (int8 codes, scales (M,)).
    ``out``: a contiguous (M × K) int8 or float32 tensor to write the codes into (the fbgemm path
    takes them as floats)."""
    x = _f32_2d(x)
    m, k = x.shape
    q = torch.empty((m, k), dtype=torch.int8) if out is None else out
    s = torch.empty(m, dtype=torch.float32)
    weight = torch.ones(k) if skip is None else (~skip).to(torch.float32)
    _quant_rows(x.numpy(), qmax, weight.numpy(), q.numpy(), s.numpy())
    return q, s


def quantize_channels(x: torch.Tensor, shift: torch.Tensor, inv_step: torch.Tensor, qmax: int,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """Static quantization with a per-input-channel shift and step: ``clamp(round((x − z_j)/Δ_j), ±qmax)``.
    A per-tensor static scale is the special case of a constant step (OutlierTune, RTN-static).
    ``out`` as in :func:`quantize_rows`."""
    x = _f32_2d(x)
    q = torch.empty(x.shape, dtype=torch.int8) if out is None else out
    _quant_channels(x.numpy(), shift.numpy(), inv_step.numpy(), qmax, q.numpy())
    return q


def column_amax(x: torch.Tensor) -> torch.Tensor:
    """max_i |x_ij| over the token dim: (K,) float32."""
    x = _f32_2d(x)
    out = torch.empty(x.shape[1], dtype=torch.float32)
    _col_amax(x.numpy(), out.numpy())
    return out


def int_mm(xq: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
    """int8 (M × K) · int8 (K × N) → int32 (M × N) with ``torch._int_mm`` (fast with VNNI/AMX only;
    quant/linear.py asks hw/ which path to take)."""
    return torch._int_mm(xq, w_t)


def dequantize_epilogue(acc: torch.Tensor, sx: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor,
                        in_place: bool = False) -> torch.Tensor:
    """``acc · s_x[i] · s_w[j] + b[j]`` in one pass; ``sx`` is (M,) per row or (1,) per tensor.

    ``in_place``: write the float32 result over the int32 accumulator's own memory (same size; each
    element is read before it is written) — no second M × N buffer to allocate, fault in and stream
    through the caches. Only for an accumulator the caller owns (the fresh output of ``int_mm``)."""
    if in_place and acc.is_contiguous():
        _dequant_inplace(acc.numpy(), sx.numpy(), sw.numpy(), bias.numpy())
        return acc.view(torch.float32)
    out = torch.empty(acc.shape, dtype=torch.float32)
    _dequant(acc.numpy(), sx.numpy(), sw.numpy(), bias.numpy(), out.numpy())
    return out


def w8a8_matmul(x: torch.Tensor, w_t: torch.Tensor, sw: torch.Tensor, bias: torch.Tensor, qmax: int) -> torch.Tensor:
    """Dynamic per-token W8A8 (or narrower) linear: (M × K) float → (M × N) float32."""
    xq, sx = quantize_rows(x, qmax)
    return dequantize_epilogue(int_mm(xq, w_t), sx, sw, bias, in_place=True)


def llm_int8_matmul(
    x: torch.Tensor,
    w_t: torch.Tensor,
    sw: torch.Tensor,
    bias: torch.Tensor,
    threshold: float,
    col_slot: torch.Tensor,
    outlier_w_t: torch.Tensor,
) -> torch.Tensor:
    """LLM.int8() with mixed-precision decomposition.

    ``col_slot`` (K,) int32 maps an input column to its row in ``outlier_w_t`` (C × N, the original float
    weight columns of calibration outliers), or −1 where none is kept.
    """
    from scalinglab.kernels import llm_int8_kernels as L  # imports this module: deferred

    x = _f32_2d(x)
    xq, sx, cols, kept = L.scan_quantize(x, threshold, 127, col_slot)
    acc = int_mm(xq, w_t)
    if kept:  # the usual case: every outlier dim was seen at calibration
        return L.dequant_outliers_(acc, sx, sw, bias, x, cols, col_slot, outlier_w_t)
    y = dequantize_epilogue(acc, sx, sw, bias, in_place=True)
    outlier = torch.zeros(x.shape[1], dtype=torch.bool)
    outlier[cols] = True
    return add_outlier_product_(y, x, outlier, col_slot, outlier_w_t, lambda: w_t, sw)


def add_outlier_product_(y: torch.Tensor, x: torch.Tensor, outlier: torch.Tensor, col_slot: torch.Tensor,
                         outlier_w_t: torch.Tensor, codes, sw: torch.Tensor) -> torch.Tensor:
    """``y += X[:, O]·W[:, O]ᵀ`` in float (the decomposition's second term), in place.

    ``col_slot`` (K,) int32 maps an input column to its row in ``outlier_w_t`` (C × N, the original float
    weight columns of calibration outliers), or −1 where none is kept; those columns fall back to their
    dequantized int8 codes, which ``codes()`` returns (K × N) only when needed.
    """
    cols = outlier.nonzero().squeeze(1)
    if cols.numel():
        slot = col_slot[cols].long()
        if bool((slot >= 0).all()):  # the usual case: every outlier dim was seen at calibration
            w_o = outlier_w_t[slot]  # original float columns, (|O| × N)
        else:
            w_o = codes()[cols].float() * sw  # dequantized fallback for dims never seen before
            kept = slot >= 0
            w_o[kept] = outlier_w_t[slot[kept]]
        y.addmm_(x[:, cols], w_o)
    return y


# ---------------------------------------------------------------- plain references (tests only)


def quantize_rows_reference(x: torch.Tensor, qmax: int, skip: torch.Tensor | None = None):
    x = x.float().clone()
    if skip is not None:
        x[:, skip] = 0
    amax = x.abs().amax(dim=1)
    s = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return torch.round(x * (1.0 / s)[:, None]).to(torch.int8), s  # reciprocal, as the kernel does


def quantize_channels_reference(x, shift, inv_step, qmax):
    return torch.clamp(torch.round((x.float() - shift) * inv_step), -qmax, qmax).to(torch.int8)


def llm_int8_matmul_reference(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, threshold: float) -> torch.Tensor:
    """Dettmers et al. 2022, Eq. 3 from the float weight W (N × K), written out with no kernels."""
    x = x.float()
    outlier = (x.abs() >= threshold).any(dim=0)
    xr = x.clone()
    xr[:, outlier] = 0
    ax = xr.abs().amax(1)
    sx = torch.where(ax > 0, ax / 127, torch.ones_like(ax))
    aw = w.abs().amax(1)
    sw = torch.where(aw > 0, aw / 127, torch.ones_like(aw))
    xq = torch.round(xr / sx[:, None])
    wq = torch.round(w / sw[:, None])
    y = (xq @ wq.T) * sx[:, None] * sw[None, :]
    return y + x[:, outlier] @ w[:, outlier].T + bias
