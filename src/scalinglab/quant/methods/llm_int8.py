"""LLM.int8() (Dettmers et al. 2022): vector-wise int8 with mixed-precision outlier decomposition.

Per-row (token) absmax scales for X, per-output-channel scales for W; input columns holding any
``|x| ≥ threshold`` (6.0) at run time leave the int8 product and are multiplied in floating point
(Eq. 3). The float columns of W for the outlier dimensions seen in calibration are kept alongside the
int8 codes — a handful of columns, so memory stays ~4× below fp32 — and the run-time kernel uses them;
a dimension that only turns into an outlier later uses its dequantized int8 column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.config import OUTLIER_THRESHOLD, MethodConfig
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.primitives import quantize_weight
from scalinglab.quant.registry import Method, register

__all__ = ["LLMInt8Config", "llm_int8_linear"]


@dataclass(frozen=True, kw_only=True)
class LLMInt8Config(MethodConfig):
    """threshold: the outlier magnitude (Sec. 3.2). Weights and activations are 8-bit by definition."""

    name: ClassVar[str] = "llm.int8"
    bits_w: ClassVar[int] = 8
    bits_a: ClassVar[int] = 8

    threshold: float = OUTLIER_THRESHOLD

    def validate(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float) or not self.threshold > 0:
            raise InputError(f"threshold: expected a positive magnitude, got {self.threshold!r}")

    @property
    def needs_calibration(self) -> bool:
        return True  # which weight columns to keep in float comes from the calibration outliers


def llm_int8_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None,
                    cfg: LLMInt8Config) -> QuantLinear:
    """LLM.int8 linear from float W (out × in); ``stats`` picks which original weight columns to keep."""
    w = w.detach().float()
    w_q, w_scale = quantize_weight(w, 8, "channel")
    cols = (stats.amax >= cfg.threshold).nonzero().squeeze(1) if stats is not None else torch.zeros(0, dtype=torch.long)
    return QuantLinear.from_parts(w_q, w_scale, bias, "llm.int8", 8, 8, outlier_cols=cols,
                                  outlier_w=w[:, cols], threshold=cfg.threshold)


METHOD = register(Method(config=LLMInt8Config, linear=llm_int8_linear))
