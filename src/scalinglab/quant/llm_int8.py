"""LLM.int8() (Dettmers et al. 2022): vector-wise int8 with mixed-precision outlier decomposition.

Per-row (token) absmax scales for X, per-output-channel scales for W; input columns holding any
``|x| ≥ threshold`` (6.0) at run time leave the int8 product and are multiplied in floating point
(Eq. 3). The float columns of W for the outlier dimensions seen in calibration are kept alongside the
int8 codes — a handful of columns, so memory stays ~4× below fp32 — and the run-time kernel uses them;
a dimension that only turns into an outlier later uses its dequantized int8 column.
"""

from __future__ import annotations

import torch

from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.config import QuantConfig
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.rtn import quantize_weight

__all__ = ["llm_int8_linear"]


def llm_int8_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None, cfg: QuantConfig) -> QuantLinear:
    """LLM.int8 linear from float W (out × in); ``stats`` picks which original weight columns to keep."""
    w = w.detach().float()
    w_q, w_scale = quantize_weight(w, 8, "channel")
    cols = stats.outlier_cols() if stats is not None else torch.zeros(0, dtype=torch.long)
    return QuantLinear.from_parts(w_q, w_scale, bias, "llm.int8", 8, 8, outlier_cols=cols,
                                  outlier_w=w[:, cols], threshold=cfg.threshold)
