"""Save and load quantized checkpoints: safetensors weights plus a JSON quantization map.

The directory keeps the Hugging Face layout (config.json, tokenizer files) and adds
``quantization.json``: the method's config (``{"method": name, **fields}``) and, per replaced module,
its run-time ``kind`` (``QuantLinear``, or a layer a method registered) with what that module needs to
be rebuilt empty. Loading builds the float architecture from config.json, swaps those modules in, and
loads the stored codes and scales — nothing is re-quantized, so outputs are bit-identical.

Format 1 (one config class for every method, all its fields stored; every module a QuantLinear) still
loads: fields its method does not have are dropped, and module entries without a ``kind`` are QuantLinear.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.config import MethodConfig

__all__ = ["save_quantized", "load_quantized", "is_quantized_dir", "QUANT_MAP", "FORMAT_VERSION"]

QUANT_MAP = "quantization.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 2
READS = (1, 2)
# Format 1 stored the fields of one config class shared by every method; each method keeps its own.
V1_FIELDS = ("bits_w", "bits_a", "w_granularity", "a_granularity", "a_dynamic", "threshold", "alpha", "skip")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "tokenizer.model", "generation_config.json")


def is_quantized_dir(model_dir: Path) -> bool:
    return (Path(model_dir) / QUANT_MAP).is_file()


def save_quantized(model: nn.Module, out: Path, quant_config: MethodConfig | dict,
                   source_dir: Path | None = None) -> Path:
    """Write ``model`` (with quantized modules) to ``out``; copies tokenizer files from ``source_dir``.

    ``quant_config``: the config the model was quantized with (or its ``to_dict()``)."""
    from safetensors.torch import save_model

    from scalinglab.quant.registry import config_from_dict, runtime_kind_of

    cfg = quant_config if isinstance(quant_config, MethodConfig) else config_from_dict(quant_config)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "config") and hasattr(model.config, "to_json_file"):
        model.config.to_json_file(out / "config.json")
    elif hasattr(getattr(model, "config", None), "to_dict"):  # the ladder GPT, under its own module names
        meta = {"architectures": ["ScalinglabGPT"], "model_type": "scalinglab-gpt", "scalinglab": model.config.to_dict()}
        (out / "config.json").write_text(json.dumps(meta, indent=1))
    modules = {}
    for n, m in model.named_modules():
        rt = runtime_kind_of(m)
        if rt is not None:
            modules[n] = {"kind": rt.kind, **rt.spec(m)}
    (out / QUANT_MAP).write_text(json.dumps({"format_version": FORMAT_VERSION, "config": cfg.to_dict(),
                                             "modules": modules}, indent=1))
    save_model(model, str(out / WEIGHTS))  # handles tied (shared) tensors
    if source_dir is not None:
        for name in _TOKENIZER_FILES:
            if (Path(source_dir) / name).is_file():
                shutil.copy2(Path(source_dir) / name, out / name)
    return out


def install_empty(model: nn.Module, modules: dict[str, dict], where: str = QUANT_MAP) -> None:
    """Replace each named module by an empty module of its recorded kind, after checking every spec
    against the layer it replaces."""
    from scalinglab.quant.registry import runtime_kinds

    kinds = runtime_kinds()
    named = dict(model.named_modules())
    built = {}
    for name, spec in modules.items():
        if name not in named:
            raise InputError(f"{where}: module {name!r} does not exist in the model built from config.json")
        if not isinstance(spec, dict):
            raise InputError(f"{where}: module {name!r}: expected an object, got {type(spec).__name__}")
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in kinds:
            raise InputError(f"{where}: module {name!r}: kind {kind!r}, expected one of {', '.join(kinds)}")
        kinds[kind].check(name, spec, named[name], where)
        built[name] = kinds[kind].build(spec)
    for name, module in built.items():
        parent_name, _, child = name.rpartition(".")
        setattr(named[parent_name] if parent_name else model, child, module)


def read_quant_map(model_dir: Path) -> tuple[dict, MethodConfig]:
    """``quantization.json`` checked: (map with the config and module entries in the current format, config)."""
    from scalinglab.quant.registry import config_from_dict

    where = Path(model_dir) / QUANT_MAP
    try:
        qmap = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{where}: expected a JSON quantization map ({type(exc).__name__})") from None
    if not isinstance(qmap, dict) or not isinstance(qmap.get("modules"), dict):
        raise InputError(f"{where}: expected a JSON object with a 'modules' object")
    version = qmap.get("format_version")
    if version not in READS or isinstance(version, bool):
        raise InputError(f"{where}: format_version {version!r}, expected one of {', '.join(map(str, READS))}")
    cfg = qmap.get("config")
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: 'config' must be an object (the config it was made with)")
    try:
        config = config_from_dict(cfg, ignore=V1_FIELDS if version == 1 else ())
    except InputError as exc:
        raise InputError(f"{where}: config: {exc}") from None
    modules = qmap["modules"]
    if version == 1:  # every module of format 1 is a QuantLinear, and its entries name no kind
        for n, spec in modules.items():
            if isinstance(spec, dict) and "kind" in spec:
                raise InputError(f"{where}: module {n!r}: unknown key 'kind' (format_version 1)")
        modules = {n: {"kind": "QuantLinear", **s} if isinstance(s, dict) else s for n, s in modules.items()}
    return {**qmap, "format_version": FORMAT_VERSION, "config": config.to_dict(), "modules": modules}, config


def load_quantized(model_dir: Path) -> tuple[nn.Module, dict]:
    """Rebuild a quantized model saved by :func:`save_quantized`; returns (model, quant map).

    Every file is checked first (:mod:`scalinglab.quant.checks`): the map's config must be one that
    ``quantize`` accepts, each module spec must match the layer it replaces, and the weights must match
    the rebuilt modules in name, shape and dtype.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from scalinglab.quant.checks import load_checked_weights, read_config
    from scalinglab.quant.registry import runtime_kinds

    model_dir = Path(model_dir)
    qmap, _ = read_quant_map(model_dir)
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
    install_empty(model, qmap["modules"], str(model_dir / QUANT_MAP))
    load_checked_weights(model, model_dir / WEIGHTS, optional=_is_recomputed)
    kinds = runtime_kinds()
    named = dict(model.named_modules())
    for name, spec in qmap["modules"].items():
        validate = kinds[spec["kind"]].validate
        if validate is not None:
            validate(name, named[name], str(model_dir / WEIGHTS))
    return model.eval(), qmap


def _is_recomputed(key: str) -> bool:
    return "rotary_emb" in key or key.endswith(".masked_bias") or key.endswith("attn.bias")

