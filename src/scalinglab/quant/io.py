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
    """Rebuild a quantized model saved by :func:`save_quantized`; returns (model, quant map)."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = Path(model_dir)
    try:
        qmap = json.loads((model_dir / QUANT_MAP).read_text())
        modules = qmap["modules"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{model_dir / QUANT_MAP}: expected a JSON quantization map with 'modules': {exc}") from None
    meta = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
    if meta.get("model_type") == "scalinglab-gpt":
        from scalinglab.ladder.model import GPT, GPTConfig

        model = GPT(GPTConfig(**meta["scalinglab"]))
    else:
        config = AutoConfig.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_config(config)  # non-persistent buffers (masks, rotary) built here
    install_empty(model, modules)
    missing, unexpected = load_model(model, str(model_dir / WEIGHTS), strict=False)
    if unexpected or [k for k in missing if not _is_recomputed(k)]:
        raise InputError(f"{model_dir / WEIGHTS}: tensors do not match the quantization map "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), qmap


def _is_recomputed(key: str) -> bool:
    return "rotary_emb" in key or key.endswith(".masked_bias") or key.endswith("attn.bias")

