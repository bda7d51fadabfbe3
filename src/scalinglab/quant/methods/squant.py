"""SQuant (Guo et al. 2022): data-free — RTN's scales with rounding decisions flipped so that the error sums
a linear layer's outputs see stay within ±0.5 of a step (the math is in ``quant/squant.py``).

No calibration: ``scalinglab quantize MODEL --method squant --bits 4 --out DIR`` needs no ``--calib``.

- ``activations="int8"``: per-output-channel absmax scales (RTN's), ``bits_w``-bit codes in int8
  containers, activations dynamic per token at ``bits_a`` bits — RTN's ``QuantLinear`` with SQuant codes.
- ``activations="none"``: weight-only (W8A16/W6A16/W4A16) with the scales and zero points of the
  ``weight_only`` method (same groups) in its ``WeightOnlyLinear`` (4-bit codes packed two per byte), only
  the codes differ; the kernel is the group of ``group_size`` inputs, the channel the whole row.

``kernel_size`` (int8 activations; 1 = the paper's fully connected case, SQuant-C over the row) groups
consecutive inputs into kernels for SQuant-K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.config import MethodConfig, check_bits, check_choice
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.registry import Method, register
from scalinglab.quant.squant import squant_codes, squant_weight

__all__ = ["SQuantConfig", "squant_linear"]

GROUP_SIZES = (0, 32, 64, 128)


@dataclass(frozen=True, kw_only=True)
class SQuantConfig(MethodConfig):
    """bits_w: 8, 6 or 4; activations: "int8" (bits_a-bit dynamic per-token activations) or "none"
    (weight-only, bits_a None); kernel_size: inputs per SQuant-K kernel (int8 activations; 1: none);
    group_size: weight-only inputs per scale, 32/64/128 (0: one per row)."""

    name: ClassVar[str] = "squant"
    option_fields: ClassVar[dict[str, tuple[str, ...]]] = {"bits": ("bits_w",)}

    bits_w: int = 8
    bits_a: int | None = 8
    activations: str = "int8"
    kernel_size: int = 1
    group_size: int = 0

    def validate(self) -> None:
        check_bits("bits_w", self.bits_w)
        check_choice("activations", self.activations, ("int8", "none"))
        if self.activations == "none":
            object.__setattr__(self, "bits_a", None)
        else:
            check_bits("bits_a", self.bits_a)
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1:
            raise InputError(f"kernel_size: expected an integer >= 1, got {self.kernel_size!r}")
        check_choice("group_size", self.group_size, GROUP_SIZES)
        if self.group_size and self.activations != "none":
            raise InputError("group_size: applies to weight-only (activations none); int8 uses one scale per row")

    @property
    def label(self) -> str:
        g = f" g{self.group_size}" if self.group_size else ""
        return f"{super().label}{g}"

    @classmethod
    def from_options(cls, **options: Any) -> SQuantConfig:
        if options.get("group_size") is not None and options.get("activations") is None:
            options["activations"] = "none"
        return super().from_options(**options)


def squant_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None,
                  cfg: SQuantConfig) -> torch.nn.Module:
    """SQuant linear from float W (out × in); ``stats`` is not used (data-free)."""
    if cfg.activations == "none":
        return _weight_only(w, bias, cfg)
    w_q, w_scale = squant_weight(w, cfg.bits_w, cfg.kernel_size)
    return QuantLinear.from_parts(w_q, w_scale, bias, "token", cfg.bits_w, cfg.bits_a)


def _weight_only(w: torch.Tensor, bias: torch.Tensor | None, cfg: SQuantConfig) -> torch.nn.Module:
    """The group-wise asymmetric layout's scales and zero points, SQuant codes (kernel = group)."""
    from scalinglab.kernels import wo_format as F
    from scalinglab.quant.weight_only import WeightOnlyLinear

    m = WeightOnlyLinear.from_float(w, bias, cfg.bits_w, cfg.group_size)
    n, k = w.shape
    scale = m.scales.float().repeat_interleave(m.g, dim=1)[:, :k]
    zero = m.zeros.float().repeat_interleave(m.g, dim=1)[:, :k]
    q = squant_codes(w, scale, cfg.bits_w, kernel_size=m.g, zero=zero)
    pad = F.padded_in(k, cfg.bits_w, m.group_size) - k
    q = torch.cat([q.to(torch.uint8), m.zeros.repeat_interleave(m.g, dim=1)[:, k:k + pad]], dim=1)
    m.codes = F.pack_codes(q, cfg.bits_w, m.g)
    return m


METHOD = register(Method(config=SQuantConfig, linear=squant_linear))
