"""OutlierTune (2024): symmetrization, then per-channel static activation scales pre-executed in W.

(1) Symmetrization: per input channel ``z_j = (max_j + min_j)/2`` from calibration; X' = X − z has a
symmetric range. The shift is exact in floating point: it is subtracted from the preceding norm's bias
and ``W·z`` is added to the linear's bias (``X·Wᵀ + b = (X − z)·Wᵀ + (b + W·z)``). Linears with no
norm with a bias in front (attention output, MLP down projection, RMSNorm models) subtract z inside
the activation quantizer instead — the same arithmetic, fused into the one pass that quantizes X.
(2) Pre-execution of dequantization: ``Δ_j = s_j / qmax`` with ``s_j = (max_j − min_j)/2`` after
symmetrization; W'[:, j] = W[:, j]·Δ_j is quantized per output channel, and at run time
``X_int = clamp(round(X'/Δ))`` (saturating), ``Y = (X_int·Q(W')ᵀ)·s_w + b'`` — no per-channel rescaling
inside or after the integer matmul.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from scalinglab.quant.calibrate import ChannelStats, linear_weight
from scalinglab.quant.config import MethodConfig, check_bits
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.primitives import amax_to_scale, qmax_for_bits, quantize_weight
from scalinglab.quant.registry import Method, register

__all__ = ["OutlierTuneConfig", "symmetrization_shift", "symmetrize_", "outliertune_linear"]


@dataclass(frozen=True, kw_only=True)
class OutlierTuneConfig(MethodConfig):
    """bits_w / bits_a: 8, 6 or 4; weights per output channel, activations static per channel."""

    name: ClassVar[str] = "outliertune"

    bits_w: int = 8
    bits_a: int = 8

    def validate(self) -> None:
        check_bits("bits_w", self.bits_w)
        check_bits("bits_a", self.bits_a)

    @property
    def needs_calibration(self) -> bool:
        return True  # z_j and Δ_j come from the calibrated range of each input channel


def symmetrization_shift(x_max: torch.Tensor, x_min: torch.Tensor) -> torch.Tensor:
    """``z_j = (max_j + min_j) / 2``."""
    return (x_max.float() + x_min.float()) / 2


@torch.no_grad()
def symmetrize_(norm: nn.Module, linears: list[nn.Module], z: torch.Tensor) -> None:
    """In place: norm bias −= z; each linear's bias += W·z (a bias is created where there is none)."""
    norm.bias.sub_(z.to(norm.bias.dtype))
    for lin in linears:
        wz = linear_weight(lin) @ z.to(lin.weight.dtype)
        if lin.bias is None:
            lin.bias = nn.Parameter(wz.to(lin.weight.dtype))
        else:
            lin.bias.add_(wz.to(lin.bias.dtype))


def symmetrize_pair(norm: nn.Module, linears: dict[str, nn.Module], stats: dict[str, ChannelStats],
                    cfg: OutlierTuneConfig) -> dict[str, dict]:
    """The pair rewrite: fold z into a norm with a bias; without one (RMSNorm) the quantizer shifts."""
    if getattr(norm, "bias", None) is None:
        return {}
    st = stats[next(iter(linears))]
    symmetrize_(norm, list(linears.values()), symmetrization_shift(st.max, st.min))
    return {n: {"folded": True} for n in linears}


def outliertune_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats, cfg: OutlierTuneConfig,
                       folded: bool = False) -> QuantLinear:
    """OutlierTune linear from float W (out × in) and the calibration statistics of its raw input X.

    ``folded``: the shift z was already folded into the preceding norm and this linear's bias by
    :func:`symmetrize_`; otherwise it is subtracted at run time and ``W·z`` is added to the bias here.
    """
    w = w.detach().float()
    z = symmetrization_shift(stats.max, stats.min)
    step = amax_to_scale((stats.max - stats.min) / 2, qmax_for_bits(cfg.bits_a))  # Δ_j = s_j / qmax
    b = torch.zeros(w.shape[0]) if bias is None else bias.detach().float()
    if not folded:
        b = b + w @ z
    w_q, w_scale = quantize_weight(w * step, cfg.bits_w, "channel")
    return QuantLinear.from_parts(w_q, w_scale, b, "static", cfg.bits_w, cfg.bits_a,
                                  act_shift=torch.zeros_like(z) if folded else z, act_inv_step=1.0 / step,
                                  act_scale=1.0)


METHOD = register(Method(config=OutlierTuneConfig, linear=outliertune_linear, pair_rewrite=symmetrize_pair))
