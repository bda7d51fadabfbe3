"""Up-front checks of a ladder spec's values: types, ranges and memory, before any job starts.

A value that passes a config's own checks can still fail every job an hour later (``d_model: true``
is an int to Python, ``batch_size: 2.5`` truncates, ``beta1: 2.0`` makes Adam diverge, ``d_model:
65536`` needs terabytes). So a spec's settings are checked here against the config's field types
(``int`` never accepts a boolean or a fraction, ``float`` must be finite) and these ranges, and each
job's peak memory is estimated against the machine's RAM.

Memory estimate per training process (bytes):
    weights, gradients and AdamW's two moments:  16 · N_total               (fp32, 4 copies)
    activations kept for backward, per layer:    2 · B·T·d · (34 + 5·h·T/d) (Korthikanti et al. 2022,
                                                 Sec. 4.1, Eq. 1, counted in fp32: twice their 16-bit bytes)
    logits, their softmax and gradient:          12 · B·T·V
"""

from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import fields

from scalinglab.errors import InputError

__all__ = ["check_fields", "check_train_ranges", "estimate_train_bytes", "check_memory", "MAX_EVALS"]

MAX_EVALS = 1000  # evaluations per run: more cost more than the training they measure
# Adam's β must lie in [0, 1): β = 1 never forgets, β > 1 diverges.
RANGES = {
    "beta1": (0.0, 1.0, "[0, 1)"),
    "beta2": (0.0, 1.0, "[0, 1)"),
}
NON_NEGATIVE = ("weight_decay", "grad_clip")
POSITIVE = ("lr", "checkpoint_every_s")
BYTES_FP32 = 4
ADAM_COPIES = 4  # weights, gradients, first and second moments
ACTIVATION_TERMS = 34  # Korthikanti et al. 2022, Sec. 4.1, Eq. 1: s·b·h·(34 + 5·a·s/h) bytes per layer in 16-bit
ATTENTION_TERMS = 5
LOGIT_COPIES = 3  # logits, softmax, gradient
FP32_OVER_FP16 = 2  # the byte counts of Eq. 1 are for 16-bit activations; ours are fp32


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value, tp, where: str) -> None:
    """``value`` (as parsed from the spec file) fits the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return
        tp = next(o for o in options if o is not type(None))
        origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: {value!r} must be true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: {value!r} must be an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"{where}: {value!r} must be a finite number")
    elif tp is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: {value!r} must be text")
    elif origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise InputError(f"{where}: expected a list of text values, got {value!r}")


def check_fields(cls, values, where: str, nested: dict | None = None) -> None:
    """Every key of ``values`` is a field of dataclass ``cls`` and its value has the field's type.

    ``nested`` maps a field name to the dataclass its table is checked against (``markov``).
    """
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a table of settings, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    allowed = {f.name for f in fields(cls)}
    for key, value in values.items():
        if key not in allowed:
            raise InputError(f"{where}: unknown field '{key}' (allowed: {', '.join(sorted(allowed))})")
        if nested and key in nested:
            check_fields(nested[key], value, f"{where}: {key}")
        else:
            _check_value(value, hints[key], f"{where}: '{key}'")


def check_train_ranges(values: dict, where: str) -> None:
    """Ranges TrainConfig does not check itself, on the spec's raw values."""
    for name, (lo, hi, text) in RANGES.items():
        if name in values and not lo <= values[name] < hi:
            raise InputError(f"{where}: '{name}' = {values[name]!r}, expected a value in {text}")
    for name in NON_NEGATIVE:
        if name in values and values[name] < 0:
            raise InputError(f"{where}: '{name}' = {values[name]!r}, expected >= 0")
    for name in POSITIVE:
        if name in values and not values[name] > 0:
            raise InputError(f"{where}: '{name}' = {values[name]!r}, expected > 0")
    if values.get("n_evals", 1) > MAX_EVALS:
        raise InputError(f"{where}: 'n_evals' = {values['n_evals']!r}, expected at most {MAX_EVALS}")


def estimate_train_bytes(model, batch_size: int) -> int:
    """Peak bytes of one training process for GPTConfig ``model`` at micro-batch ``batch_size``."""
    from scalinglab.ladder.flops import total_params

    B, T, d, L, h, V = batch_size, model.seq_len, model.d_model, model.n_layer, model.n_head, model.vocab_size
    weights = ADAM_COPIES * BYTES_FP32 * total_params(model)
    activations = L * FP32_OVER_FP16 * B * T * d * (ACTIVATION_TERMS + ATTENTION_TERMS * h * T / d)
    logits = LOGIT_COPIES * BYTES_FP32 * B * T * V
    return int(weights + activations + logits)


def machine_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(model, batch_size: int, where: str, available: int | None = None) -> None:
    """Refuse a job whose estimated peak memory exceeds the machine's RAM."""
    need = estimate_train_bytes(model, batch_size)
    have = machine_bytes() if available is None else available
    if have is not None and need > have:
        raise InputError(f"{where}: one job needs about {need / 2**30:.3g} GiB (d_model={model.d_model}, "
                         f"n_layer={model.n_layer}, seq_len={model.seq_len}, batch_size={batch_size}), more than "
                         f"this machine's {have / 2**30:.3g} GiB; use a smaller model or batch")
