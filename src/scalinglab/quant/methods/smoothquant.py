"""SmoothQuant (Xiao et al. 2023): migrate activation outliers into the weights, then W8A8.

For a norm → linear(s) pair, per input channel j (Eq. 4):
``s_j = max|X_j|^α / max|W_j|^(1−α)``, X' = X·diag(s)^-1 (folded into the norm's weight and bias),
W' = W·diag(s) (the linear's input columns). X'·W'ᵀ = X·Wᵀ exactly in real arithmetic. Only valid when
the norm's output feeds nothing but those linears: in a post-LN block (OPT-350M) it is also the residual
stream, which the division would change — ``quantize_`` checks this and refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats, linear_weight
from scalinglab.quant.config import MethodConfig, check_bits, check_choice
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.methods.rtn import RTNConfig, rtn_linear
from scalinglab.quant.registry import Method, register

__all__ = ["SmoothQuantConfig", "smoothing_factors", "smooth_", "smoothquant_linear", "MIN_FACTOR", "SMOOTH_ALPHA"]

MIN_FACTOR = 1e-5  # SmoothQuant reference code clamps s_j from below so dead channels stay finite
SMOOTH_ALPHA = 0.5  # Xiao et al. 2023, Sec. 4: alpha = 0.5 suits OPT and most models


@dataclass(frozen=True, kw_only=True)
class SmoothQuantConfig(MethodConfig):
    """alpha: migration strength in [0, 1]; bits_w / bits_a: 8, 6 or 4; weights per output channel;
    a_granularity "token" (dynamic, the paper's O3) or "tensor" (O2 dynamic, O1 with a_dynamic=False)."""

    name: ClassVar[str] = "smoothquant"

    bits_w: int = 8
    bits_a: int = 8
    alpha: float = SMOOTH_ALPHA
    a_granularity: str = "token"
    a_dynamic: bool = True

    def validate(self) -> None:
        check_bits("bits_w", self.bits_w)
        check_bits("bits_a", self.bits_a)
        check_choice("a_granularity", self.a_granularity, ("token", "tensor"))
        check_choice("a_dynamic", self.a_dynamic, (True, False))
        if self.a_granularity == "token" and not self.a_dynamic:
            raise InputError("a_granularity: 'token' needs a_dynamic=True: per-token scales exist only at run time")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha: expected a value in [0, 1], got {self.alpha!r}")

    @property
    def needs_calibration(self) -> bool:
        return True  # s_j needs max|X_j|

    @classmethod
    def from_options(cls, per_tensor: bool | None = None, **options: Any) -> SmoothQuantConfig:
        """``--per-tensor``: one activation scale per batch (weights stay per output channel)."""
        if per_tensor:
            options.update(a_granularity="tensor")
        return super().from_options(**options)


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


def scaled_stats(st: ChannelStats, s: torch.Tensor) -> ChannelStats:
    """Statistics of X' = X / s, derived analytically from those of X (s > 0)."""
    out = ChannelStats(st.k, st.threshold)
    out.max, out.min = st.max / s, st.min / s
    out.outlier_tokens, out.tokens_touched, out.tokens = st.outlier_tokens, st.tokens_touched, st.tokens
    return out


def smooth_pair(norm: nn.Module, linears: dict[str, nn.Module], stats: dict[str, ChannelStats],
                cfg: SmoothQuantConfig) -> dict[str, dict]:
    """The pair rewrite: s_j from the shared input's amax and the linears' joint weight amax."""
    lins = list(linears.values())
    w_amax = torch.stack([linear_weight(m).abs().amax(0).float() for m in lins]).amax(0)
    s = smoothing_factors(stats[next(iter(linears))].amax, w_amax, cfg.alpha)
    smooth_(norm, lins, s)
    for n in linears:
        stats[n] = scaled_stats(stats[n], s)
    return {}


def smoothquant_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None,
                       cfg: SmoothQuantConfig) -> QuantLinear:
    """The (already smoothed) linear: per-channel weights, activations as ``cfg`` says."""
    rtn = RTNConfig(bits_w=cfg.bits_w, bits_a=cfg.bits_a, a_granularity=cfg.a_granularity, a_dynamic=cfg.a_dynamic)
    return rtn_linear(w, bias, stats, rtn)


METHOD = register(Method(config=SmoothQuantConfig, linear=smoothquant_linear, pair_rewrite=smooth_pair))
