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

``stats="sampled"``: every linear rounds for the channel means and variances of its inputs on
``sample_seqs`` sequences of ``sample_len`` tokens that the float model samples itself from random first
tokens (no data; ``quant/sampled_moments.py``), with :func:`~scalinglab.quant.squant.moment_codes`.
``stats="norm"``: a linear fed directly by a norm (attention QKV and MLP up-projection of a pre-LN block)
takes its inputs' channel means and variances from the norm's affine parameters, μ_j = β_j, v_j = γ_j²
(still no data), and its codes minimise the expected output error under those moments
(:func:`~scalinglab.quant.squant.moment_codes`); the other linears keep plain SQuant.
``stats="none"``: plain SQuant everywhere.
Default: "sampled" with one scale per row (int8 activations, or weight-only ``group_size=0``), "none" with
group scales — on the Shakespeare GPT-2 (docs/quantization.md) sampled moments cut the W4 per-row
perplexity loss by a third and were no better than plain SQuant with groups of 128 or 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats, linear_weight
from scalinglab.quant.config import MethodConfig, check_bits, check_choice
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.primitives import amax_to_scale, qmax_for_bits
from scalinglab.quant.registry import Method, register
from scalinglab.quant.squant import moment_codes, squant_codes, squant_weight

__all__ = ["SQuantConfig", "norm_moments", "sampled_moments", "squant_linear"]

GROUP_SIZES = (0, 32, 64, 128)
STATS = ("sampled", "norm", "none")


@dataclass(frozen=True, kw_only=True)
class SQuantConfig(MethodConfig):
    """bits_w: 8, 6 or 4; activations: "int8" (bits_a-bit dynamic per-token activations) or "none"
    (weight-only, bits_a None); kernel_size: inputs per SQuant-K kernel (int8 activations; 1: none);
    group_size: weight-only inputs per scale, 32/64/128 (0: one per row); stats: where the input moments
    the codes are rounded for come from: "sampled" (text the model samples itself, every linear), "norm"
    (the γ and β of the norm feeding a linear; the others plain SQuant) or "none" (plain SQuant
    everywhere); default: "sampled" with one scale per row, "none" with group scales; sample_seqs,
    sample_len: how much text "sampled" draws."""

    name: ClassVar[str] = "squant"
    option_fields: ClassVar[dict[str, tuple[str, ...]]] = {"bits": ("bits_w",)}

    bits_w: int = 8
    bits_a: int | None = 8
    activations: str = "int8"
    kernel_size: int = 1
    group_size: int = 0
    stats: str | None = None
    sample_seqs: int = 32
    sample_len: int = 128

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
        if self.stats is None:  # what measured better: sampled moments with row scales, plain SQuant with groups
            object.__setattr__(self, "stats", "none" if self.group_size else "sampled")
        check_choice("stats", self.stats, STATS)
        for name in ("sample_seqs", "sample_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 4096:
                raise InputError(f"{name}: expected an integer in [2, 4096], got {value!r}")
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


def squant_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None, cfg: SQuantConfig,
                  mean: torch.Tensor | None = None, var: torch.Tensor | None = None) -> torch.nn.Module:
    """SQuant linear from float W (out × in); ``stats`` is not used (data-free). ``mean`` / ``var``: the
    input channel moments from :func:`norm_moments` (plain SQuant without them)."""
    moments = None if mean is None or var is None or cfg.stats == "none" else (mean.float(), var.float())
    if cfg.activations == "none":
        return _weight_only(w, bias, cfg, moments)
    if moments is None:
        w_q, w_scale = squant_weight(w, cfg.bits_w, cfg.kernel_size)
    else:
        w_scale = amax_to_scale(w.abs().amax(dim=1), qmax_for_bits(cfg.bits_w)).contiguous()
        w_q = moment_codes(w, w_scale[:, None], cfg.bits_w, *moments)
    return QuantLinear.from_parts(w_q, w_scale, bias, "token", cfg.bits_w, cfg.bits_a)


def _weight_only(w: torch.Tensor, bias: torch.Tensor | None, cfg: SQuantConfig,
                 moments: tuple[torch.Tensor, torch.Tensor] | None) -> torch.nn.Module:
    """The group-wise asymmetric layout's scales and zero points, SQuant codes (kernel = group)."""
    from scalinglab.kernels import wo_format as F
    from scalinglab.quant.weight_only import WeightOnlyLinear

    m = WeightOnlyLinear.from_float(w, bias, cfg.bits_w, cfg.group_size)
    n, k = w.shape
    scale = m.scales.float().repeat_interleave(m.g, dim=1)[:, :k]
    zero = m.zeros.float().repeat_interleave(m.g, dim=1)[:, :k]
    if moments is None:
        q = squant_codes(w, scale, cfg.bits_w, kernel_size=m.g, zero=zero)
    else:
        q = moment_codes(w, scale, cfg.bits_w, *moments, zero=zero)
    pad = F.padded_in(k, cfg.bits_w, m.group_size) - k
    q = torch.cat([q.to(torch.uint8), m.zeros.repeat_interleave(m.g, dim=1)[:, k:k + pad]], dim=1)
    m.codes = F.pack_codes(q, cfg.bits_w, m.g)
    return m


def norm_moments(norm: torch.nn.Module, linears: dict[str, torch.nn.Module], cfg: SQuantConfig) -> dict[str, dict]:
    """Input moments of the linears a norm feeds: mean β (zero for a norm without bias, e.g. RMSNorm) and
    variance γ², for every linear whose input width is the norm's."""
    if cfg.stats != "norm":
        return {}
    gamma = norm.weight.detach().float()
    beta = getattr(norm, "bias", None)
    beta = torch.zeros_like(gamma) if not isinstance(beta, torch.Tensor) else beta.detach().float()
    return {name: {"mean": beta.clone(), "var": gamma.pow(2)} for name, lin in linears.items()
            if linear_weight(lin).shape[1] == gamma.numel()}


def sampled_moments(model: torch.nn.Module, linears: dict[str, torch.nn.Module], cfg: SQuantConfig,
                    forward) -> dict[str, dict]:
    """Input moments of every linear on ``cfg.sample_seqs`` sequences the model samples itself (seed 0)."""
    if cfg.stats != "sampled":
        return {}
    from scalinglab.quant.models import context_length
    from scalinglab.quant.sampled_moments import input_moments, sample_sequences

    ids = sample_sequences(model, forward, cfg.sample_seqs, min(cfg.sample_len, context_length(model)))
    moments = input_moments(model, linears, list(ids.split(8)), forward)
    return {name: {"mean": mean, "var": var} for name, (mean, var) in moments.items()}


METHOD = register(Method(config=SQuantConfig, linear=squant_linear, pair_hints=norm_moments,
                         model_hints=sampled_moments))
