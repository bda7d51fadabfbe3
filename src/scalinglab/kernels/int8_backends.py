"""Int8 GEMM backends besides ``torch._int_mm``: fbgemm's prepacked dynamic linear, and float fallback.

``torch._int_mm`` is fast on CPUs with AVX-512 VNNI / AMX and a scalar loop elsewhere (838 ms against
24 ms for fp32 at 256×1024×1024 on an AVX2-only Zen 3). fbgemm (``torch.ops.quantized``) has tuned
kernels for AVX2, AVX-512 and VNNI and takes prepacked weights, but it quantizes the activations itself
with one *per-tensor* asymmetric uint8 scale. To keep the per-token scales our quantizers chose (and so
the exact integer product of our codes), the codes are handed to it as floats with one extra *anchor row*
``[-(q+1), q, 0, …]``: its min/max then span exactly 2q+1 steps, fbgemm's scale is exactly 1 and its
zero point q+1, so it re-quantizes every code exactly and returns ``(X_q·W_qᵀ) ⊙ s_w`` — the row scales
s_x and the bias are applied after, in one numba pass.

Without VNNI, fbgemm multiplies uint8 × int8 pairs with ``vpmaddubsw``, which saturates at int16: a
pair of 255·127 products overflows. PyTorch's answer is ``reduce_range`` (7-bit activations), and so is
ours: ``act_qmax(full_range=False) == 63``. Whether full range is exact on this machine is measured once
by :func:`full_range_exact` (hw/calibrate.py), not guessed from flags.
"""

from __future__ import annotations

import warnings

import numba
import torch

__all__ = ["fbgemm_available", "pack_weight", "unpack_weight", "act_qmax", "anchor_", "fbgemm_product",
           "rescale_rows_", "full_range_exact", "int_mm_exact", "REDUCED_QMAX"]

REDUCED_QMAX = 63  # 7-bit activation codes: 2·(64+63)·127 < 2^15, no int16 saturation in vpmaddubsw

_JIT = dict(nogil=True, cache=True, error_model="numpy")


def fbgemm_available() -> bool:
    return "fbgemm" in torch.backends.quantized.supported_engines


def act_qmax(qmax: int, full_range: bool) -> int:
    """Largest activation code the fbgemm path may use: ``qmax``, or 63 where full range saturates."""
    return qmax if full_range else min(qmax, REDUCED_QMAX)


def pack_weight(w_t: torch.Tensor, w_scale: torch.Tensor):
    """Prepack int8 codes ``w_t`` (K × N) with per-output scales (N,) for fbgemm; codes are kept exactly."""
    n = w_t.shape[1]
    with warnings.catch_warnings():  # quantized tensors are deprecated as a user type; the ops stay
        warnings.simplefilter("ignore", UserWarning)
        qw = torch._make_per_channel_quantized_tensor(w_t.t().contiguous(), w_scale.double(),
                                                      torch.zeros(n, dtype=torch.long), 0)
    engine = torch.backends.quantized.engine
    try:  # prepack dispatches on the global engine; the packed object then carries its own kernels
        torch.backends.quantized.engine = "fbgemm"
        return torch.ops.quantized.linear_prepack(qw, None)
    finally:
        torch.backends.quantized.engine = engine


def unpack_weight(packed) -> torch.Tensor:
    """The int8 codes (K × N) back from a packed weight (exact)."""
    qw, _ = torch.ops.quantized.linear_unpack(packed)
    return qw.int_repr().t().contiguous()


def anchor_(codes: torch.Tensor, qmax: int) -> None:
    """Write the anchor row (the last row of an (M+1) × K float buffer, K ≥ 2): min −(q+1), max q."""
    codes[-1].zero_()
    codes[-1, 0], codes[-1, 1] = -(qmax + 1), qmax


def fbgemm_product(codes: torch.Tensor, packed, qmax: int) -> torch.Tensor:
    """(X_q·W_qᵀ)·s_w for float codes with their anchor row (M+1 × K): returns the first M rows (M × N)."""
    out = torch.ops.quantized.linear_dynamic(codes, packed, qmax <= REDUCED_QMAX)
    return out[:-1]


@numba.njit(**_JIT)
def _rescale_rows(y, sx, bias):  # pragma: no cover - compiled
    m, n = y.shape
    per_row = sx.shape[0] > 1
    for i in range(m):
        si = sx[i] if per_row else sx[0]
        for j in range(n):
            y[i, j] = y[i, j] * si + bias[j]


def rescale_rows_(y: torch.Tensor, sx: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``y[i, j] · s_x[i] + b[j]`` in place, one pass (``sx`` (M,) per row or (1,) per tensor)."""
    _rescale_rows(y.numpy(), sx.numpy(), bias.numpy())
    return y


def full_range_exact(k: int = 256) -> bool:
    """Whether fbgemm computes full 8-bit codes exactly here: the worst case for int16 saturation (all
    codes ±127 against weights ±127, so every pair sums to ±2·255·127 after the zero-point shift)."""
    if not fbgemm_available():
        return False
    w_t = torch.full((k, 4), 127, dtype=torch.int8)
    w_t[:, 1] = -127
    packed = pack_weight(w_t, torch.ones(4))
    codes = torch.zeros(3, k)
    codes[0], codes[1] = 127.0, -127.0
    anchor_(codes, 127)
    got = fbgemm_product(codes, packed, 127)
    want = codes[:-1].double() @ w_t.double()
    return bool(torch.equal(got.double(), want))


def int_mm_exact(k: int = 256) -> bool:
    """Whether ``torch._int_mm`` computes the exact int32 product here. oneDNN's int8 GEMM without VNNI
    (``ONEDNN_MAX_CPU_ISA=AVX2``, an AVX2-only CPU) multiplies pairs in int16 with saturation like fbgemm's
    AVX2 kernels; it returned sums off by up to 16,000 on random codes. Probe: alternating ±127 codes
    against ±127 weights (the saturating case) and random codes, compared with a float64 product."""
    if not hasattr(torch, "_int_mm"):
        return False
    g = torch.Generator().manual_seed(0)
    x = torch.full((16, k), 127, dtype=torch.int8)
    x[:, 1::2] = -127
    x[8:] = torch.randint(-127, 128, (8, k), generator=g, dtype=torch.int8)
    w_t = torch.randint(-127, 128, (k, 32), generator=g, dtype=torch.int8)
    w_t[:, 0], w_t[:, 1] = 127, -127
    w_t[1::2, 2] = -127
    w_t[0::2, 2] = 127
    try:
        got = torch._int_mm(x, w_t)
    except RuntimeError:
        return False
    return bool(torch.equal(got.double(), x.double() @ w_t.double()))


def _warm() -> None:  # compile the epilogue for float32 (used by hw/calibrate.py before timing)
    rescale_rows_(torch.zeros(1, 1), torch.ones(1), torch.zeros(1))

