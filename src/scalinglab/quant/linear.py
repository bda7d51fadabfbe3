"""``QuantLinear``: a linear layer that holds integer weights and runs int8 × int8 → int32.

It replaces ``nn.Linear`` (and GPT-2's ``Conv1D``) after quantization; the float weights are gone, only
int8 codes (stored transposed, in × out, the layout ``torch._int_mm`` reads fastest), one float32
scale per output channel and the bias remain. How the activations are quantized is the ``act`` mode:

- ``token``:  dynamic, one absmax scale per row of X (per token) — RTN, SmoothQuant
- ``tensor``: dynamic, one absmax scale for the whole batch — RTN per-tensor
- ``static``: calibrated per-channel shift ``z`` and step ``Δ`` with a saturating clamp; the product is
  rescaled by one constant ``act_scale`` (RTN static: the tensor scale; OutlierTune: 1, its Δ_j being
  already folded into the weight columns)
- ``llm.int8``: dynamic per-token with the outlier-column decomposition (kernels/int8_matmul.py)

Narrower bit widths (6, 4) use the same int8 containers with a smaller ``qmax``.
"""

from __future__ import annotations

import torch
from torch import nn

from scalinglab.kernels import int8_matmul as K
from scalinglab.kernels import int8_torch as KT
from scalinglab.quant.primitives import qmax_for_bits

__all__ = ["ACT_MODES", "QuantLinear"]

ACT_MODES = ("token", "tensor", "static", "llm.int8")


class QuantLinear(nn.Module):
    """y = dequant(X_q · W_qᵀ) + b, with the int8 product on ``torch._int_mm``.

    Construct empty (for loading a checkpoint) with the shapes, or with ``QuantLinear.from_parts``.
    """

    def __init__(self, in_features: int, out_features: int, act: str, bits_w: int = 8, bits_a: int = 8,
                 n_outlier_cols: int = 0, threshold: float = 6.0):
        super().__init__()
        if act not in ACT_MODES:
            raise ValueError(f"act must be one of {ACT_MODES}, got {act!r}")
        self.in_features, self.out_features = in_features, out_features
        self.act, self.bits_w, self.bits_a, self.threshold = act, bits_w, bits_a, float(threshold)
        self.register_buffer("w_t", torch.zeros(in_features, out_features, dtype=torch.int8))  # (K, N)
        self.register_buffer("w_scale", torch.ones(out_features))  # (N,)
        self.register_buffer("bias", torch.zeros(out_features))  # (N,)
        if act == "static":
            self.register_buffer("act_shift", torch.zeros(in_features))  # z_j
            self.register_buffer("act_inv_step", torch.ones(in_features))  # 1/Δ_j
            self.register_buffer("act_scale", torch.ones(1))
        if act == "llm.int8":
            self.register_buffer("col_slot", torch.full((in_features,), -1, dtype=torch.int32))
            self.register_buffer("outlier_w_t", torch.zeros(n_outlier_cols, out_features))  # (C, N)

    @classmethod
    def from_parts(cls, w_q: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None, act: str,
                   bits_w: int, bits_a: int, **act_params) -> QuantLinear:
        """Assemble from int8 weight codes ``w_q`` (N × K), per-output scales (N,) and the activation
        parameters of the mode (``act_shift``, ``act_inv_step``, ``act_scale`` for static;
        ``outlier_cols`` + ``outlier_w`` (N × C) and ``threshold`` for llm.int8)."""
        n, k = w_q.shape
        outlier_cols = act_params.get("outlier_cols")
        n_out = 0 if outlier_cols is None else int(outlier_cols.numel())
        m = cls(k, n, act, bits_w, bits_a, n_out, act_params.get("threshold", 6.0))
        m.w_t = w_q.t().contiguous()
        m.w_scale = w_scale.reshape(-1).float().contiguous().clone()
        if bias is not None:
            m.bias = bias.detach().float().clone()
        if act == "static":
            m.act_shift = act_params["act_shift"].float().contiguous().clone()
            m.act_inv_step = act_params["act_inv_step"].float().contiguous().clone()
            m.act_scale = torch.as_tensor(act_params["act_scale"], dtype=torch.float32).reshape(1).clone()
        if act == "llm.int8" and n_out:
            slot = torch.full((k,), -1, dtype=torch.int32)
            slot[outlier_cols] = torch.arange(n_out, dtype=torch.int32)
            m.col_slot = slot
            m.outlier_w_t = act_params["outlier_w"].t().float().contiguous().clone()
        return m

    @property
    def qmax_a(self) -> int:
        return qmax_for_bits(self.bits_a)

    def spec(self) -> dict:
        """What a checkpoint needs to rebuild this module empty (quant/io.py)."""
        n_out = self.outlier_w_t.shape[0] if self.act == "llm.int8" else 0
        return {"in_features": self.in_features, "out_features": self.out_features, "act": self.act,
                "bits_w": self.bits_w, "bits_a": self.bits_a, "n_outlier_cols": n_out, "threshold": self.threshold}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, dtype = x.shape[:-1], x.dtype
        x2 = x.reshape(-1, self.in_features)
        if x2.shape[0] == 0:
            return x.new_zeros(*lead, self.out_features)
        if x2.device.type != "cpu":  # CUDA: the same math in torch ops (the numba kernels are host-only)
            y = KT.quant_linear(self, x2)
        elif self.act == "token":
            y = K.w8a8_matmul(x2, self.w_t, self.w_scale, self.bias, self.qmax_a)
        elif self.act == "llm.int8":
            y = K.llm_int8_matmul(x2, self.w_t, self.w_scale, self.bias, self.threshold,
                                  self.col_slot, self.outlier_w_t)
        else:
            if self.act == "tensor":
                amax = float(x2.detach().abs().amax())
                s = amax / self.qmax_a if amax > 0 else 1.0
                shift = torch.zeros(self.in_features)
                inv = torch.full((self.in_features,), 1.0 / s)
                scale = torch.tensor([s], dtype=torch.float32)
            else:
                shift, inv, scale = self.act_shift, self.act_inv_step, self.act_scale
            xq = K.quantize_channels(x2, shift, inv, self.qmax_a)
            y = K.dequantize_epilogue(K.int_mm(xq, self.w_t), scale, self.w_scale, self.bias, in_place=True)
        return y.to(dtype).reshape(*lead, self.out_features)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        key = prefix + "w_t"  # on CUDA w_t may be K-contiguous (kernels/int8_torch.py); files hold it row-major
        if key in destination and not destination[key].is_contiguous():
            destination[key] = destination[key].contiguous()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, act={self.act}, "
                f"W{self.bits_w}A{self.bits_a}")
