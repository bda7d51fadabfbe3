"""Quantize a trained ladder model with one config and measure its loss: the ladder's one call into quant/.

    from scalinglab.ladder.autoquant import QuantSpec, quantize_and_evaluate
    spec = QuantSpec.from_raw({"method": "rtn", "bits": 4, "activations": "none", "group_size": 32})
    result = quantize_and_evaluate(model, spec, val_batches)          # QuantEval(loss, weight_bytes)

A ladder spec's ``quantize:`` list holds these configs; every finished run is evaluated with each
(:mod:`scalinglab.ladder.quant_runs`). Fields:

    method       rtn | smoothquant | outliertune | llm.int8
    bits         weight bits: 8, 6 or 4
    activations  none (weight-only, "W4A16": activations stay in floating point; rtn only) or 8, 6, 4:
                 activations quantized too (dynamic per-token for rtn and smoothquant, calibrated static
                 per-channel steps for outliertune, 8 with outlier columns for llm.int8)
    group_size   weight-only: input channels sharing one step (e.g. 32, 64, 128; at least 2); absent or
                 null = one step per output channel. A group at least as wide as a layer's input is the row.

Weight-only RTN (:class:`scalinglab.quant.weight_only.WeightOnlyLinear`): each group of g inputs of an
output row gets an asymmetric min/max grid, step s = (max − min)/(2^b − 1) (float16) and zero point z
(uint8), w ↦ s·(clamp(round(w/s) + z) − z) — the grouping of Frantar et al. 2023 (GPTQ, Sec. 5) with
round-to-nearest instead of GPTQ's error feedback; codes are packed (two per byte at 4 bits). The loss is
evaluated with the dequantized weights in the float layers (the same function as the packed layer's
fused dequant-matmul, checked to 1e-5 in the tests). Weight-and-activation methods go through
:func:`scalinglab.quant.quantize_` with their method's config (:func:`scalinglab.quant.config_for`):
symmetric absmax codes (qmax = 2^(b−1) − 1; 6- and 4-bit codes sit
in int8 containers there, one byte per weight). ``weight_bytes`` is measured on the quantized model: every
parameter and buffer (embeddings, norms and biases stay in float).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scalinglab.errors import InputError

__all__ = ["QuantSpec", "QuantEval", "quantize_and_evaluate", "parse_quantize", "check_groups", "FIELDS"]

METHODS = ("rtn", "smoothquant", "outliertune", "llm.int8")
BITS = (8, 6, 4)
WEIGHT_ONLY = "none"
PER_CHANNEL = 0  # group_size stored for "one scale per output channel"
FIELDS = ("method", "bits", "activations", "group_size")
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
        elif isinstance(group, bool) or not isinstance(group, int) or group < 2:
            raise InputError(f"{where}: 'group_size' = {group!r}, expected an integer >= 2 (input channels per "
                             "step) or null for one step per output channel")
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
    """Every group size narrower than a linear's input width must divide it (no padded last group)."""
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
    outliertune, llm.int8); weight-only RTN is data-free. The linears quantized are those
    :func:`scalinglab.quant.apply.find_linears` finds (the tied LM head stays in float).
    """
    import torch

    from scalinglab.ladder.train import evaluate
    from scalinglab.quant.apply import find_linears
    from scalinglab.quant.evaluate import model_bytes

    qmodel = copy.deepcopy(model).cpu().eval()
    if spec.weight_only:
        from scalinglab.quant.weight_only import WeightOnlyLinear

        # Bytes from the packed modules; the loss from the float layers holding the dequantized weights Ŵ,
        # the function WeightOnlyLinear computes (its fused kernel is ~2× slower than fp32 at the evaluation's
        # M = batch·T rows on these narrow layers, and its result differs only in summation order).
        packed = copy.deepcopy(qmodel)
        modules = dict(packed.named_modules())
        with torch.no_grad():
            for name, lin in find_linears(qmodel).items():
                q = WeightOnlyLinear.from_float(lin.weight, lin.bias, spec.bits, spec.group_size)
                lin.weight.copy_(q.dequantize())
                parent, _, child = name.rpartition(".")
                setattr(modules[parent] if parent else packed, child, q)
        return QuantEval(loss=evaluate(qmodel, eval_batches, "fp32", "cpu"), weight_bytes=model_bytes(packed))
    from scalinglab.quant.apply import quantize_
    from scalinglab.quant.models import forward_logits
    from scalinglab.quant.registry import config_for

    config = config_for(spec.method, bits_w=spec.bits, bits_a=int(spec.activations))  # the method's own config
    quantize_(qmodel, config, calib=list(calib) or None, forward=forward_logits)
    return QuantEval(loss=evaluate(qmodel, eval_batches, "fp32", "cpu"), weight_bytes=model_bytes(qmodel))
