"""SmoothQuant (Xiao et al. 2023): migrate activation outliers into the weights, then W8A8.

For a norm → linear(s) pair, per input channel j (Eq. 4):
``s_j = max|X_j|^α / max|W_j|^(1−α)``, X' = X·diag(s)^-1 (folded into the norm's weight and bias),
W' = W·diag(s) (the linear's input columns). X'·W'ᵀ = X·Wᵀ exactly in real arithmetic. Only valid when
the norm's output feeds nothing but those linears: in a post-LN block (OPT-350M) it is also the residual
stream, which the division would change — refused.
"""

from __future__ import annotations

import torch
from torch import nn

from scalinglab.quant.calibrate import ChannelStats, linear_weight
from scalinglab.quant.config import QuantConfig
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.rtn import rtn_linear

__all__ = ["smoothing_factors", "smooth_", "smoothquant_linear", "MIN_FACTOR"]

MIN_FACTOR = 1e-5  # SmoothQuant reference code clamps s_j from below so dead channels stay finite


def smoothing_factors(x_amax: torch.Tensor, w_amax: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s_j = max|X_j|^α / max|W_j|^(1−α)`` (Eq. 4); channels with no signal get s_j = 1."""
    x_amax, w_amax = x_amax.float(), w_amax.float()
    s = x_amax.clamp_min(MIN_FACTOR).pow(alpha) / w_amax.clamp_min(MIN_FACTOR).pow(1 - alpha)
    dead = (x_amax <= 0) | (w_amax <= 0)
    return torch.where(dead, torch.ones_like(s), s.clamp_min(MIN_FACTOR))


@torch.no_grad()
def smooth_(norm: nn.Module, linears: list[nn.Module], s: torch.Tensor) -> None:
    """In place: norm weight (and bias) ÷ s, each linear's input columns × s."""
    norm.weight.div_(s.to(norm.weight.dtype))
    if getattr(norm, "bias", None) is not None:
        norm.bias.div_(s.to(norm.bias.dtype))
    for lin in linears:
        linear_weight(lin).mul_(s.to(lin.weight.dtype))  # a view: Conv1D's transpose writes through


def smoothquant_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None, cfg: QuantConfig) -> QuantLinear:
    """The (already smoothed) linear in W8A8: per-channel weights, activations as ``cfg`` says."""
    return rtn_linear(w, bias, stats, QuantConfig(method="rtn", bits_w=cfg.bits_w, bits_a=cfg.bits_a,
                                                  a_granularity=cfg.a_granularity, a_dynamic=cfg.a_dynamic))
