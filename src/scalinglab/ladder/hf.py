"""Checkpoints of the ladder GPT in a Hugging Face layout: ``config.json`` + ``model.safetensors`` + tokenizer.

    from scalinglab.ladder.hf import save_model, load_model
    save_model(model, "ckpt/", tokenizer)    # tokenizer: a `tokenizers.Tokenizer` (optional)
    model = load_model("ckpt/")              # our GPT, bit-identical weights
    # and, for GPT-2-compatible configs:
    transformers.AutoModelForCausalLM.from_pretrained("ckpt/")  # same logits (to float rounding)

Layout. When the config is expressible as GPT-2 — layernorm, pre-norm, biases, standard parametrization
(the ladder default) — ``config.json`` is a ``GPT2Config`` (``model_type: "gpt2"``, ``activation_function:
"gelu_new"``, dropouts 0, ``layer_norm_epsilon`` 1e-5, tied embeddings) and the weights use GPT-2 names:

    transformer.wte.weight (V, d)      transformer.wpe.weight (T, d)     transformer.ln_f.{weight,bias}
    transformer.h.{i}.ln_1 / ln_2.{weight,bias}
    transformer.h.{i}.attn.c_attn.{weight (d, 3d), bias (3d)}   = [q_proj; k_proj; v_proj] transposed
    transformer.h.{i}.attn.c_proj, mlp.c_fc, mlp.c_proj          = o_proj, fc_in, fc_out transposed
    (GPT-2's Conv1D stores weights as (in, out); lm_head is tied to wte and not stored.)

Other configs (rmsnorm, post/peri norms, μP) have no transformers class: ``config.json`` then has
``model_type: "scalinglab-gpt"`` and the weights keep our own parameter names (``blocks.{i}.attn.q_proj.weight``,
…). Either way ``config.json["scalinglab"]`` holds the full :class:`GPTConfig`, which :func:`load_model` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from scalinglab.atomic import atomic_write
from scalinglab.errors import InputError
from scalinglab.ladder.model import GPT, NORM_EPS, GPTConfig

__all__ = ["save_model", "load_model", "load_tokenizer", "is_gpt2_compatible", "to_gpt2_state_dict", "from_gpt2_state_dict"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def is_gpt2_compatible(cfg: GPTConfig) -> bool:
    return cfg.norm == "layernorm" and cfg.placement == "pre" and cfg.bias and cfg.parametrization == "sp"


def _gpt2_config(cfg: GPTConfig) -> dict:
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.seq_len, "n_embd": cfg.d_model, "n_layer": cfg.n_layer,
        "n_head": cfg.n_head, "n_inner": cfg.mlp_ratio * cfg.d_model, "activation_function": "gelu_new",
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": NORM_EPS,
        "initializer_range": cfg.init_std, "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0,
        "torch_dtype": "float32",
    }


def to_gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our parameters under GPT-2 names (Conv1D weights transposed, Q/K/V concatenated)."""
    sd = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight,
          "transformer.ln_f.weight": model.norm_f.weight, "transformer.ln_f.bias": model.norm_f.bias}
    for i, b in enumerate(model.blocks):
        h, a = f"transformer.h.{i}.", b.attn
        sd |= {
            h + "ln_1.weight": b.norm_attn.weight, h + "ln_1.bias": b.norm_attn.bias,
            h + "ln_2.weight": b.norm_mlp.weight, h + "ln_2.bias": b.norm_mlp.bias,
            h + "attn.c_attn.weight": torch.cat((a.q_proj.weight, a.k_proj.weight, a.v_proj.weight)).t(),
            h + "attn.c_attn.bias": torch.cat((a.q_proj.bias, a.k_proj.bias, a.v_proj.bias)),
            h + "attn.c_proj.weight": a.o_proj.weight.t(), h + "attn.c_proj.bias": a.o_proj.bias,
            h + "mlp.c_fc.weight": b.mlp.fc_in.weight.t(), h + "mlp.c_fc.bias": b.mlp.fc_in.bias,
            h + "mlp.c_proj.weight": b.mlp.fc_out.weight.t(), h + "mlp.c_proj.bias": b.mlp.fc_out.bias,
        }
    return {k: v.detach().contiguous() for k, v in sd.items()}


def from_gpt2_state_dict(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Inverse of :func:`to_gpt2_state_dict`: GPT-2 names → our ``state_dict`` keys."""
    d = cfg.d_model
    out = {"wte.weight": sd["transformer.wte.weight"], "wpe.weight": sd["transformer.wpe.weight"],
           "norm_f.weight": sd["transformer.ln_f.weight"], "norm_f.bias": sd["transformer.ln_f.bias"]}
    for i in range(cfg.n_layer):
        h, o = f"transformer.h.{i}.", f"blocks.{i}."
        qkv_w, qkv_b = sd[h + "attn.c_attn.weight"].t(), sd[h + "attn.c_attn.bias"]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[o + f"attn.{name}.weight"] = qkv_w[j * d:(j + 1) * d]
            out[o + f"attn.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
        out |= {
            o + "norm_attn.weight": sd[h + "ln_1.weight"], o + "norm_attn.bias": sd[h + "ln_1.bias"],
            o + "norm_mlp.weight": sd[h + "ln_2.weight"], o + "norm_mlp.bias": sd[h + "ln_2.bias"],
            o + "attn.o_proj.weight": sd[h + "attn.c_proj.weight"].t(), o + "attn.o_proj.bias": sd[h + "attn.c_proj.bias"],
            o + "mlp.fc_in.weight": sd[h + "mlp.c_fc.weight"].t(), o + "mlp.fc_in.bias": sd[h + "mlp.c_fc.bias"],
            o + "mlp.fc_out.weight": sd[h + "mlp.c_proj.weight"].t(), o + "mlp.fc_out.bias": sd[h + "mlp.c_proj.bias"],
        }
    return {k: v.contiguous() for k, v in out.items()}


def save_model(model: GPT, out_dir: str | Path, tokenizer=None) -> Path:
    """Write config.json, model.safetensors and (given a `tokenizers.Tokenizer`) tokenizer files."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    if is_gpt2_compatible(cfg):
        meta, tensors = _gpt2_config(cfg), to_gpt2_state_dict(model)
    else:
        meta = {"architectures": ["ScalinglabGPT"], "model_type": "scalinglab-gpt"}
        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta["scalinglab"] = cfg.to_dict()
    atomic_write(out / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    atomic_write(out / CONFIG, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    if tokenizer is not None:
        # tokenizer.json + a config naming the fast tokenizer class: what AutoTokenizer needs, written without
        # importing transformers (slow to import in every ladder worker).
        atomic_write(out / "tokenizer.json", lambda p: tokenizer.save(str(p)))
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.seq_len,
                   "clean_up_tokenization_spaces": False}
        atomic_write(out / "tokenizer_config.json", lambda p: p.write_text(json.dumps(tok_cfg, indent=2) + "\n"))
    return out


def gpt_config_from_meta(meta, where: Path) -> GPTConfig:
    """The GPTConfig in a checkpoint's ``config.json["scalinglab"]``, its fields and types checked."""
    from scalinglab.ladder.spec_checks import check_fields

    if not isinstance(meta, dict) or not isinstance(meta.get("scalinglab"), dict):
        raise InputError(f"{where}: no 'scalinglab' object; not a ladder checkpoint")
    check_fields(GPTConfig, meta["scalinglab"], f"{where}: scalinglab")
    return GPTConfig(**meta["scalinglab"])


def load_model(model_dir: str | Path) -> GPT:
    """Rebuild our GPT from a directory written by :func:`save_model` (eval mode, float32)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(model_dir)
    if not (d / CONFIG).is_file() or not (d / WEIGHTS).is_file():
        raise InputError(f"{d}: expected a checkpoint directory with {CONFIG} and {WEIGHTS}")
    try:
        meta = json.loads((d / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{d / CONFIG}: not a JSON file") from None
    cfg = gpt_config_from_meta(meta, d / CONFIG)
    from scalinglab.ladder.flops import total_params

    # Stored fp32 weights take 4 bytes each (tied unembedding stored once): a config that describes a far larger
    # model than the file holds is refused before the model is allocated.
    if 4 * total_params(cfg) > 2 * (d / WEIGHTS).stat().st_size + 2**20:
        raise InputError(f"{d / CONFIG}: describes {total_params(cfg):,} parameters, more than {WEIGHTS} holds")
    try:
        sd = load_file(str(d / WEIGHTS))
        if meta.get("model_type") == "gpt2":
            sd = from_gpt2_state_dict(sd, cfg)
        model = GPT(cfg)
        expected = model.state_dict()
        for k, v in sd.items():
            if k in expected and (v.dtype != expected[k].dtype or not bool(torch.isfinite(v).all())):
                raise InputError(f"{d / WEIGHTS}: tensor {k!r} is {v.dtype} or not finite; the model needs finite "
                                 f"{expected[k].dtype}")
        model.load_state_dict(sd, strict=True)
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{d / WEIGHTS}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    except KeyError as exc:
        raise InputError(f"{d / WEIGHTS}: lacks tensor {exc.args[0]!r}") from None
    except RuntimeError as exc:
        raise InputError(f"{d / WEIGHTS}: tensors do not match config.json ({' '.join(str(exc).split())[:200]})") from None
    return model.eval()


def load_tokenizer(model_dir: str | Path):
    """The `tokenizers.Tokenizer` saved beside a checkpoint."""
    from tokenizers import Tokenizer

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{model_dir}: no tokenizer.json")
    return Tokenizer.from_file(str(path))
