"""Quantize a trained ladder model with one config and measure its loss: the ladder's one call into quant/.

    from scalinglab.ladder.autoquant import QuantSpec, quantize_and_evaluate
    spec = QuantSpec.from_raw({"method": "rtn", "bits": 4, "activations": "none", "group_size": 32})
    result = quantize_and_evaluate(model, spec, val_batches)          # QuantEval(loss, weight_bytes)

A ladder spec's ``quantize:`` list holds these configs; every finished run is evaluated with each
(:mod:`scalinglab.ladder.quant_runs`). Fields:

    method       rtn | smoothquant | outliertune | llm.int8
    bits         weight bits: 8, 6 or 4 (symmetric absmax codes, qmax = 2^(b-1) - 1)
    activations  none (weight-only, "W4A16": activations stay in floating point; rtn only) or 8, 6, 4:
                 activations quantized too (dynamic per-token for rtn and smoothquant, calibrated static
                 per-channel steps for outliertune, 8 with outlier columns for llm.int8)
    group_size   weight-only: input channels sharing one scale (e.g. 32, 64, 128); absent or null = one
                 scale per output channel. A group at least as wide as a layer's input is the whole row.

Weight-only RTN per group (Frantar et al. 2023, GPTQ Sec. 5 "grouping"; Dettmers & Zettlemoyer 2023): a row
w of W (out × in) is cut into groups of g inputs, each gets s = amax(|w_group|)/qmax and w ↦ s·round(w/s).
Its loss is measured on the dequantized weights W_q·s — the same function any W4A16 kernel computes, up to
float summation order. Its ``weight_bytes`` count the codes packed at b bits (⌈out·in·b/8⌉ bytes), one
float32 scale per group and the float bias, plus every tensor left in float (embeddings, norms).
Weight-and-activation methods go through :func:`scalinglab.quant.quantize_` and their bytes are measured on
the quantized model (codes of 6 and 4 bits sit in int8 containers there, one byte per weight).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scalinglab.errors import InputError

__all__ = ["QuantSpec", "QuantEval", "quantize_and_evaluate", "parse_quantize", "check_groups", "FIELDS"]

METHODS = ("rtn", "smoothquant", "outliertune", "llm.int8")
BITS = (8, 6, 4)
WEIGHT_ONLY = "none"
PER_CHANNEL = 0  # group_size stored for "one scale per output channel"
FIELDS = ("method", "bits", "activations", "group_size")
SCALE_BYTES = 4  # one float32 scale per group
EXAMPLE = "{method: rtn, bits: 4, activations: none, group_size: 128}"


@dataclass(frozen=True)
class QuantSpec:
    """One post-training quantization of a ladder's final checkpoints (fields: module docstring)."""

    method: str = "rtn"
    bits: int = 8
    activations: str = WEIGHT_ONLY  # "none" or the activation bits as text ("8", "6", "4")
    group_size: int = PER_CHANNEL

    @property
    def key(self) -> tuple[str, int, str, int]:
        """The row key in the store's quant_evals table."""
        return self.method, self.bits, self.activations, self.group_size

    @property
    def weight_only(self) -> bool:
        return self.activations == WEIGHT_ONLY

    @property
    def label(self) -> str:
        a = "16" if self.weight_only else self.activations
        g = f" g{self.group_size}" if self.group_size else ""
        return f"{self.method} W{self.bits}A{a}{g}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_raw(cls, raw, where: str = "quantize") -> QuantSpec:
        """Validate one spec entry (a mapping of the fields above); every error is one line naming ``where``."""
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected a table like {EXAMPLE}, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise InputError(f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(FIELDS)})")
        method = raw.get("method", "rtn")
        if method not in METHODS:
            raise InputError(f"{where}: 'method' = {method!r}, expected one of {', '.join(METHODS)}")
        bits = raw.get("bits")
        if "bits" not in raw:
            raise InputError(f"{where}: 'bits' is missing (weight bits: {', '.join(map(str, BITS))})")
        if isinstance(bits, bool) or bits not in BITS:
            raise InputError(f"{where}: 'bits' = {bits!r}, expected one of {', '.join(map(str, BITS))}")
        acts = raw.get("activations", WEIGHT_ONLY)
        if acts is None or (isinstance(acts, str) and acts.lower() == WEIGHT_ONLY):
            acts = WEIGHT_ONLY
        elif isinstance(acts, bool) or acts not in BITS:
            raise InputError(f"{where}: 'activations' = {acts!r}, expected none (weight-only) or activation bits "
                             f"{', '.join(map(str, BITS))}")
        else:
            acts = str(acts)
        group = raw.get("group_size")
        if group is None:
            group = PER_CHANNEL
        elif isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise InputError(f"{where}: 'group_size' = {group!r}, expected a positive integer (input channels per "
                             "scale) or null for one scale per output channel")
        if acts == WEIGHT_ONLY and method != "rtn":
            raise InputError(f"{where}: method {method} quantizes activations; give 'activations': 8, 6 or 4 "
                             "(weight-only is method rtn)")
        if acts != WEIGHT_ONLY and group != PER_CHANNEL:
            raise InputError(f"{where}: 'group_size' applies to weight-only quantization (activations: none); with "
                             "activations the weights get one scale per output channel")
        if method == "llm.int8" and (bits, acts) != (8, "8"):
            raise InputError(f"{where}: llm.int8 is defined for 8-bit weights and activations only")
        return cls(method=method, bits=bits, activations=acts, group_size=group)


def parse_quantize(raw, where: str) -> tuple[QuantSpec, ...]:
    """A spec's ``quantize:`` list → configs; a repeated config is an error naming both entries."""
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: expected a non-empty list of configs like {EXAMPLE}")
    out: list[QuantSpec] = []
    for i, item in enumerate(raw):
        spec = QuantSpec.from_raw(item, f"{where}[{i}]")
        if spec in out:
            raise InputError(f"{where}[{i}]: repeats entry {out.index(spec)} ({spec.label})")
        out.append(spec)
    return tuple(out)


def check_groups(specs: Sequence[QuantSpec], in_features: Sequence[int], where: str) -> None:
    """Every group size narrower than a linear's input width must divide it (no ragged last group)."""
    for i, s in enumerate(specs):
        for k in in_features:
            if s.group_size and s.group_size < k and k % s.group_size:
                raise InputError(f"{where}[{i}]: 'group_size' = {s.group_size} does not divide the input width {k} "
                                 "of a linear layer; use a divisor of it or null (one scale per output channel)")


@dataclass(frozen=True)
class QuantEval:
    loss: float  # validation loss (nats/token) of the quantized model
    weight_bytes: int  # its weights and buffers


def quantize_and_evaluate(model, spec: QuantSpec, eval_batches: Sequence[tuple], calib: Sequence = ()) -> QuantEval:
    """Quantize a copy of ``model`` (the float one is left as it was) with ``spec`` and return its loss on
    ``eval_batches`` ((x, y) id tensors, as :meth:`Corpus.val_batches` gives) and its weight bytes.

    ``calib``: token-id batches from the training distribution, for methods that calibrate (smoothquant,
    outliertune, llm.int8); weight-only RTN is data-free.
    """
    import torch

    from scalinglab.ladder.train import evaluate
    from scalinglab.quant.apply import find_linears
    from scalinglab.quant.evaluate import model_bytes

    qmodel = copy.deepcopy(model).cpu().eval()
    if spec.weight_only:
        linears = find_linears(qmodel)
        float_bytes = model_bytes(qmodel)
        packed = 0
        with torch.no_grad():
            for lin in linears.values():
                float_bytes -= lin.weight.untyped_storage().nbytes()
                lin.weight.copy_(_rtn_grouped(lin.weight, spec.bits, spec.group_size))
                out, k = lin.weight.shape
                g = min(spec.group_size or k, k)
                packed += math.ceil(out * k * spec.bits / 8) + out * (k // g) * SCALE_BYTES
        weight_bytes = float_bytes + packed
    else:
        from scalinglab.quant.apply import quantize_
        from scalinglab.quant.config import QuantConfig
        from scalinglab.quant.models import forward_logits

        cfg = QuantConfig(method=spec.method, bits_w=spec.bits, bits_a=int(spec.activations))
        quantize_(qmodel, cfg, list(calib), forward_logits)
        weight_bytes = model_bytes(qmodel)
    return QuantEval(loss=evaluate(qmodel, eval_batches, "fp32", "cpu"), weight_bytes=int(weight_bytes))


def _rtn_grouped(w, bits: int, group_size: int):
    """Dequantized round-to-nearest weights with one absmax scale per group of ``group_size`` inputs per row
    (0 or ≥ in: one per row); W (out × in) float."""
    from scalinglab.quant.primitives import amax_to_scale, dequantize, qmax_for_bits, quantize

    out, k = w.shape
    g = min(group_size or k, k)
    qmax = qmax_for_bits(bits)
    wg = w.detach().float().reshape(out, k // g, g)  # (out, groups, g)
    scale = amax_to_scale(wg.abs().amax(dim=-1, keepdim=True), qmax)
    return dequantize(quantize(wg, scale, qmax), scale).reshape(out, k).to(w.dtype)
