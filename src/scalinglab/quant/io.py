"""Save and load quantized checkpoints: safetensors weights plus a JSON quantization map.

The directory keeps the Hugging Face layout (config.json, tokenizer files) and adds
``quantization.json``: the QuantConfig and, per replaced module, the shapes and modes QuantLinear
needs to be rebuilt empty. Loading builds the float architecture from config.json, swaps those modules
in, and loads the stored int8 codes and scales — nothing is re-quantized, so outputs are bit-identical.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.linear import QuantLinear

__all__ = ["save_quantized", "load_quantized", "is_quantized_dir", "QUANT_MAP"]

QUANT_MAP = "quantization.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "tokenizer.model", "generation_config.json")


def is_quantized_dir(model_dir: Path) -> bool:
    return (Path(model_dir) / QUANT_MAP).is_file()


def save_quantized(model: nn.Module, out: Path, quant_config: dict, source_dir: Path | None = None) -> Path:
    """Write ``model`` (with QuantLinear modules) to ``out``; copies tokenizer files from ``source_dir``."""
    from safetensors.torch import save_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "config") and hasattr(model.config, "to_json_file"):
        model.config.to_json_file(out / "config.json")
    elif hasattr(getattr(model, "config", None), "to_dict"):  # the ladder GPT, under its own module names
        meta = {"architectures": ["ScalinglabGPT"], "model_type": "scalinglab-gpt", "scalinglab": model.config.to_dict()}
        (out / "config.json").write_text(json.dumps(meta, indent=1))
    modules = {n: m.spec() for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    (out / QUANT_MAP).write_text(json.dumps({"format_version": FORMAT_VERSION, "config": quant_config,
                                             "modules": modules}, indent=1))
    save_model(model, str(out / WEIGHTS))  # handles tied (shared) tensors
    if source_dir is not None:
        for name in _TOKENIZER_FILES:
            if (Path(source_dir) / name).is_file():
                shutil.copy2(Path(source_dir) / name, out / name)
    return out


def install_empty(model: nn.Module, modules: dict[str, dict]) -> None:
    """Replace each named module by an empty QuantLinear of the recorded spec."""
    named = dict(model.named_modules())
    for name, spec in modules.items():
        if name not in named:
            raise InputError(f"{QUANT_MAP}: module {name!r} does not exist in the model built from config.json")
        parent_name, _, child = name.rpartition(".")
        setattr(named[parent_name] if parent_name else model, child, QuantLinear(**spec))


def load_quantized(model_dir: Path) -> tuple[nn.Module, dict]:
    """Rebuild a quantized model saved by :func:`save_quantized`; returns (model, quant map).

    Every file is checked first (:mod:`scalinglab.quant.checks`): the map's config must be one that
    ``quantize`` accepts, each module spec must match the layer it replaces, and the weights must match
    the rebuilt modules in name, shape and dtype.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from scalinglab.quant.checks import check_module_spec, load_checked_weights, read_config
    from scalinglab.quant.config import BITS, QuantConfig

    model_dir = Path(model_dir)
    where = model_dir / QUANT_MAP
    try:
        qmap = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{where}: expected a JSON quantization map ({type(exc).__name__})") from None
    if not isinstance(qmap, dict) or not isinstance(qmap.get("modules"), dict):
        raise InputError(f"{where}: expected a JSON object with a 'modules' object")
    if qmap.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{where}: format_version {qmap.get('format_version')!r}, expected {FORMAT_VERSION}")
    cfg = qmap.get("config")
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: 'config' must be an object (the QuantConfig it was made with)")
    try:
        QuantConfig.from_dict(cfg)
    except InputError as exc:
        raise InputError(f"{where}: config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: config: {exc}") from None
    modules = qmap["modules"]
    meta = read_config(model_dir)
    if meta.get("model_type") == "scalinglab-gpt":
        from scalinglab.ladder.hf import gpt_config_from_meta
        from scalinglab.ladder.model import GPT

        model = GPT(gpt_config_from_meta(meta, model_dir / "config.json"))
    else:
        try:
            config = AutoConfig.from_pretrained(str(model_dir))
            model = AutoModelForCausalLM.from_config(config)  # non-persistent buffers (masks, rotary) built here
        except Exception as exc:  # transformers raises many types for a config it cannot build
            raise InputError(f"{model_dir / 'config.json'}: cannot build the model ({str(exc).splitlines()[0]})") from None
    named = dict(model.named_modules())
    for name, spec in modules.items():
        if name not in named:
            raise InputError(f"{where}: module {name!r} does not exist in the model built from config.json")
        check_module_spec(name, spec, named[name], str(where), BITS)
    install_empty(model, modules)
    load_checked_weights(model, model_dir / WEIGHTS, optional=_is_recomputed)
    return model.eval(), qmap


def _is_recomputed(key: str) -> bool:
    return "rotary_emb" in key or key.endswith(".masked_bias") or key.endswith("attn.bias")

