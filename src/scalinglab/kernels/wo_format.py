"""Weight-only quantization format: group-wise asymmetric codes, fp16 scales, uint8 zero points, packing.

A weight W (N out × K in) is cut along K into groups of ``g`` consecutive inputs (g = 32, 64, 128, or
the whole row: per channel). Each (output row n, group j) gets its own step and zero point
(asymmetric min/max quantization with the range widened to hold 0, as in GPTQ, Frantar et al. 2023,
and AWQ, Lin et al. 2024):

    lo = min(min W[n, G_j], 0),  hi = max(max W[n, G_j], 0),  L = 2^b − 1
    s = (hi − lo) / L  (rounded *up* to float16),  z = round(−lo / s) ∈ [0, L]
    q = clamp(round(W / s) + z, 0, L),              Ŵ = (q − z) · s

so |W − Ŵ| ≤ s/2 for every element (nothing is clamped: rounding s up keeps the range inside
[0, L]). Asymmetric rather than symmetric absmax (q ∈ [−(2^(b−1)−1), 2^(b−1)−1]) because it measured
lower weight error on a trained GPT-2: relative MSE 0.69–0.75× symmetric's at 4 bits, 0.77–0.83× at
6 bits, 0.79–0.86× at 8 bits (groups 32 / 128 / per channel) — it uses all 2^b levels and follows a
group's skew — at one extra byte per group. Zero groups get s = 1, z = 0 (exact).

Storage (the bytes are those of the tensors; nothing is assumed):

- 4 bits: two codes per byte (uint8). Within each group the low nibbles hold the first g/2 codes and
  the high nibbles the last g/2 (byte t of group j = q[jg + t] | q[jg + g/2 + t] << 4), so a kernel
  that unpacks one byte vector gets two *contiguous* runs of inputs to multiply, not interleaved ones.
- 6 and 8 bits: one uint8 per code (6-bit codes use 6 of the 8 bits: no memory gain over 8 bits,
  only the coarser grid — the honest cost of byte containers).
- scales: float16 (N × G); zero points: uint8 (N × G).

``in_features`` need not be a multiple of ``g``: the weight is padded with zero columns to
``K_pad = G·g`` (a zero input column quantizes to q = z, i.e. Ŵ = 0 exactly) and the kernels stop at K.
Per-channel 4-bit pads an odd row to even length.
"""

from __future__ import annotations

import torch

__all__ = [
    "BITS",
    "effective_group",
    "padded_in",
    "quantize_groupwise",
    "pack_codes",
    "unpack_codes",
    "dequantize_groupwise",
    "FP16_MAX",
]

BITS = (4, 6, 8)
FP16_MAX = 65504.0  # largest finite float16: a group step beyond it cannot be stored


def effective_group(in_features: int, bits: int, group_size: int) -> int:
    """The group length g used for storage: ``group_size``, or the row (``group_size = 0``: per channel),
    made even for 4 bits (two codes per byte within a group)."""
    g = group_size if group_size > 0 else in_features
    return g + (g % 2) if bits == 4 else g


def padded_in(in_features: int, bits: int, group_size: int) -> int:
    """K_pad: in_features rounded up to a whole number of groups."""
    g = effective_group(in_features, bits, group_size)
    return -(-in_features // g) * g


def _round_up_fp16(s: torch.Tensor) -> torch.Tensor:
    """float32 → float16 rounded towards +inf, so s16 ≥ s (the codes then never leave [0, L])."""
    s16 = s.to(torch.float16)
    low = s16.float() < s
    if bool(low.any()):
        s16 = torch.where(low, torch.nextafter(s16, torch.full_like(s16, float("inf"))), s16)
    return s16


def quantize_groupwise(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes (N × K_pad, uint8 in [0, 2^b − 1]), scales (N × G, float16), zero points (N × G, uint8).

    The caller has checked that ``w`` is finite and 2-D; a group whose step exceeds the float16 range
    raises ValueError (a weight range beyond ~10^6 is not a trained linear)."""
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    n, k = w.shape
    g = effective_group(k, bits, group_size)
    kp = padded_in(k, bits, group_size)
    wf = w.detach().to(torch.float32)
    if kp != k:
        wf = torch.nn.functional.pad(wf, (0, kp - k))
    wg = wf.reshape(n, kp // g, g)  # (N, G, g)
    lo = wg.amin(-1).clamp(max=0.0)
    hi = wg.amax(-1).clamp(min=0.0)
    levels = 2**bits - 1
    s = (hi - lo) / levels
    s = torch.where(s > 0, s, torch.ones_like(s))
    if float(s.max()) > FP16_MAX:
        raise ValueError(f"a weight group spans {float((hi - lo).max()):.3g}, beyond float16 scales")
    s16 = _round_up_fp16(s)
    s32 = s16.float()
    z = torch.round(-lo / s32).clamp(0, levels)
    q = torch.clamp(torch.round(wg / s32[..., None]) + z[..., None], 0, levels)
    return q.to(torch.uint8).reshape(n, kp), s16, z.to(torch.uint8)


def pack_codes(q: torch.Tensor, bits: int, g: int) -> torch.Tensor:
    """Codes (N × K_pad) → storage: uint8 (N × K_pad/2) for 4 bits (group-local halves, see module
    docstring); the codes themselves (uint8) for 6 and 8 bits."""
    if bits != 4:
        return q.to(torch.uint8).contiguous()
    n, kp = q.shape
    qg = q.to(torch.uint8).reshape(n, kp // g, 2, g // 2)
    return (qg[:, :, 0] | (qg[:, :, 1] << 4)).reshape(n, kp // 2).contiguous()


def unpack_codes(packed: torch.Tensor, bits: int, g: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: codes (N × K_pad) as uint8."""
    if bits != 4:
        return packed
    n, half = packed.shape
    pg = packed.reshape(n, half // (g // 2), 1, g // 2)
    return torch.cat([pg & 15, pg >> 4], dim=2).reshape(n, 2 * half)


def dequantize_groupwise(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int, g: int,
                         in_features: int) -> torch.Tensor:
    """The plain reference: Ŵ = (q − z)·s as float32 (N × in_features). Materialises the whole weight —
    the kernels in kernels/wo_gemm.py never do; tests compare them with this."""
    q = unpack_codes(packed, bits, g).to(torch.float32)
    n, kp = q.shape
    w = (q.reshape(n, kp // g, g) - zeros.float()[..., None]) * scales.float()[..., None]
    return w.reshape(n, kp)[:, :in_features]
