"""Pure quantization math: scales, quantize, dequantize — the plain references everything is checked against.

Symmetric absmax quantization with a b-bit code (Dettmers et al. 2022, Eq. 1):
``qmax = 2^(b-1) - 1``, ``s = amax / qmax``, ``q = clamp(round(x / s), -qmax, qmax)``, ``x ≈ q · s``.
Scales are guarded so an all-zero row or channel gets ``s = 1`` (its codes are 0, so any scale is exact).
Rounding is round-half-to-even, as in ``torch.round`` and ``numpy.rint`` (the kernels use the latter).
"""

from __future__ import annotations

import torch

__all__ = [
    "qmax_for_bits",
    "amax_to_scale",
    "quantize",
    "dequantize",
    "absmax_quantize",
    "error_bound",
    "quantize_weight",
]


def qmax_for_bits(bits: int) -> int:
    """Largest code of a symmetric b-bit integer: 127 for 8, 31 for 6, 7 for 4."""
    return 2 ** (bits - 1) - 1


def amax_to_scale(amax: torch.Tensor, qmax: int) -> torch.Tensor:
    """``s = amax / qmax`` in float32, with 1.0 where amax is 0 (zero rows must not divide by zero)."""
    amax = amax.float()
    return torch.where(amax > 0, amax / qmax, torch.ones_like(amax))


def quantize(x: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    """``clamp(round(x / s), -qmax, qmax)`` as int8; ``scale`` broadcasts against ``x``."""
    return torch.clamp(torch.round(x.float() / scale), -qmax, qmax).to(torch.int8)


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q · s`` in float32."""
    return q.float() * scale


def absmax_quantize(x: torch.Tensor, bits: int, dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax quantization with one scale per slice along ``dim`` kept (None: one scale for the tensor).

    ``dim=-1`` on activations (tokens × in) gives per-token scales; ``dim=-1`` on a weight (out × in)
    gives per-output-channel scales. Returns (int8 codes, float32 scales broadcastable to x).
    """
    qmax = qmax_for_bits(bits)
    amax = x.abs().amax() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    scale = amax_to_scale(amax, qmax)
    return quantize(x, scale, qmax), scale


def error_bound(x: torch.Tensor, w: torch.Tensor, x_step: torch.Tensor, w_step: torch.Tensor) -> torch.Tensor:
    """Worst-case |Y_q − Y| of a quantized matmul ``Y = X·Wᵀ``, elementwise over (tokens × out).

    ``x_step`` / ``w_step`` are the quantization steps (scales) broadcastable to X (tokens × in) and
    W (out × in). Rounding errs by at most half a step, so with X = X̂ + E_x, W = Ŵ + E_w:
    ``|X̂Ŵᵀ − XWᵀ| ≤ |E_x|·|W|ᵀ + |X|·|E_w|ᵀ + |E_x|·|E_w|ᵀ`` with |E| ≤ step/2. Valid only where nothing
    was clamped (absmax scales never clamp; static scales clamp beyond the calibrated range).
    """
    ex = (x_step.float() / 2).expand_as(x)
    ew = (w_step.float() / 2).expand_as(w)
    ax, aw = x.abs().float(), w.abs().float()
    return ex @ aw.T + ax @ ew.T + ex @ ew.T


def quantize_weight(w: torch.Tensor, bits: int, granularity: str = "channel") -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax codes of W (out × in) and scales (out,): per output channel, or one scale repeated."""
    qmax = qmax_for_bits(bits)
    w = w.detach().float()
    amax = w.abs().amax(dim=1) if granularity == "channel" else w.abs().amax().expand(w.shape[0])
    scale = amax_to_scale(amax, qmax)
    return quantize(w, scale[:, None], qmax), scale.contiguous()
