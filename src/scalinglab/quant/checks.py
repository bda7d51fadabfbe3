"""Checks of a checkpoint directory before anything is built from it: files are untrusted input.

- ``config.json`` must be a JSON object without ``auto_map`` (which asks transformers to import Python
  code shipped in the directory); ``tokenizer_config.json`` likewise.
- Weights come only from ``model.safetensors`` (no pickle files are ever opened); its header is read
  first and every tensor's name, shape and dtype must match the module it loads into, and every
  floating-point tensor must be finite — ``load_state_dict`` would otherwise cast a float tensor into
  an int8 buffer without a word.
- A quantization map's config must be one ``quantize`` itself accepts (its method's ``from_dict``), and
  each module spec must match the layer it replaces (``check_module_spec`` for the int8 ``QuantLinear``;
  other run-time layers register their own check, quant/registry.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.config import BITS

__all__ = ["read_config", "check_no_remote_code", "check_module_spec", "linear_features", "load_checked_weights"]

CODE_KEYS = ("auto_map",)
SPEC_KEYS = {"in_features": int, "out_features": int, "act": str, "bits_w": int, "bits_a": int,
             "n_outlier_cols": int, "threshold": float}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(f"{path}: not a JSON file") from None


def read_config(model_dir: Path) -> dict:
    """``config.json`` as a dict, refused when absent, not an object, or asking to run code."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise InputError(f"{model_dir}: expected a model directory with config.json (Hugging Face layout)")
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    check_no_remote_code(model_dir)
    return meta


def check_no_remote_code(model_dir: Path) -> None:
    """Refuse directories whose configs ask transformers to import code they ship."""
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(model_dir) / name
        if not path.is_file():
            continue
        meta = _read_json(path)
        if isinstance(meta, dict):
            for key in CODE_KEYS:
                if key in meta:
                    raise InputError(f"{path}: has '{key}', which would import Python code from the checkpoint; "
                                     "refused (only built-in architectures are loaded)")


def linear_features(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a linear layer: nn.Linear or GPT-2's Conv1D (weight stored in × out)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None:
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    return None


def check_module_spec(name: str, spec: Any, module: nn.Module, where: str, bits: tuple[int, ...] = BITS) -> None:
    """A quantization-map entry rebuilds a QuantLinear the same shape as the layer it replaces."""
    from scalinglab.quant.linear import ACT_MODES

    if not isinstance(spec, dict):
        raise InputError(f"{where}: module {name!r}: expected an object, got {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise InputError(f"{where}: module {name!r}: unknown key {key!r}")
    for key, kind in SPEC_KEYS.items():
        if key not in spec:
            if key in ("n_outlier_cols", "threshold"):
                continue
            raise InputError(f"{where}: module {name!r} lacks {key!r}")
        v = spec[key]
        ok = (isinstance(v, kind) and not isinstance(v, bool)) if kind is not float else \
            (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0)
        if not ok:
            raise InputError(f"{where}: module {name!r}: {key} = {v!r} is not a valid {kind.__name__}")
    if spec["act"] not in ACT_MODES:
        raise InputError(f"{where}: module {name!r}: act {spec['act']!r}, expected one of {', '.join(ACT_MODES)}")
    for key in ("bits_w", "bits_a"):
        if spec[key] not in bits:
            raise InputError(f"{where}: module {name!r}: {key} = {spec[key]}, expected one of {bits}")
    shape = linear_features(module)
    if shape is None:
        raise InputError(f"{where}: module {name!r} is a {type(module).__name__}, not a linear layer")
    if (spec["in_features"], spec["out_features"]) != shape:
        raise InputError(f"{where}: module {name!r}: in/out features {spec['in_features']}×{spec['out_features']} "
                         f"do not match the model's {shape[0]}×{shape[1]}")
    if not 0 <= spec.get("n_outlier_cols", 0) <= shape[0]:
        raise InputError(f"{where}: module {name!r}: n_outlier_cols must be in [0, {shape[0]}]")


def load_checked_weights(model: nn.Module, path: Path, optional=lambda key: False) -> None:
    """Load ``path`` (safetensors) into ``model`` after checking names, shapes, dtypes and finiteness.

    ``optional(key)`` names tensors the model recomputes (rotary tables, causal masks) that a file may omit.
    """
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise InputError(f"{path}: missing; expected the weights in safetensors format")
    expected = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key not in expected:
                    raise InputError(f"{path}: unexpected tensor {key!r} (not in the model built from config.json)")
                t = fh.get_tensor(key)
                want = expected[key]
                if tuple(t.shape) != tuple(want.shape) or t.dtype != want.dtype:
                    raise InputError(f"{path}: tensor {key!r} is {t.dtype} {tuple(t.shape)}, the model needs "
                                     f"{want.dtype} {tuple(want.shape)}")
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise InputError(f"{path}: tensor {key!r} holds NaN or infinite values")
                tensors[key] = t
    except InputError:
        raise
    except SafetensorError as exc:
        raise InputError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from None
    # Tied weights (one storage under two names, e.g. lm_head and the embedding) are stored once.
    by_storage: dict[int, list[str]] = {}
    for k, v in expected.items():
        by_storage.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    tied_present = {k for names in by_storage.values() if any(n in tensors for n in names) for k in names}
    missing = [k for k in expected if k not in tensors and k not in tied_present and not optional(k)]
    if missing:
        raise InputError(f"{path}: lacks tensor {missing[0]!r} ({len(missing)} missing)")
    model.load_state_dict(tensors, strict=False)
