"""Loading checkpoints and running them: Hugging Face layout dirs, generic modules, text → token batches.

A MODEL_DIR holds config.json, safetensors weights and tokenizer files. Float checkpoints load with
``transformers.AutoModelForCausalLM.from_pretrained``; quantized ones (a ``quantization.json`` beside
them) load through quant/io.py. ``forward`` is the one place that knows how to call a model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from scalinglab.errors import InputError

__all__ = ["forward_logits", "load_tokenizer", "text_to_batches", "load_float_model", "context_length"]


@torch.no_grad()
def forward_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B × T × V) for token ids (B × T): HF models take ``input_ids=``, others positionally."""
    if getattr(model, "config", None) is not None and hasattr(model.config, "model_type"):
        return model(input_ids=ids, use_cache=False).logits
    out = model(ids)
    return out[0] if isinstance(out, tuple) else out


def context_length(model: nn.Module, default: int = 1024) -> int:
    cfg = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings", "block_size", "seq_len"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return default


LADDER_MODEL_TYPE = "scalinglab-gpt"  # ladder checkpoints with no transformers class (rmsnorm, post-LN, μP)


def model_type(model_dir: Path) -> str:
    import json

    try:
        meta = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return ""
    return str(meta.get("model_type", "")) if isinstance(meta, dict) else ""


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if model_type(model_dir) != LADDER_MODEL_TYPE:
        try:
            return AutoTokenizer.from_pretrained(str(model_dir))
        except Exception:  # transformers raises many types for a missing/bad tokenizer; try the plain file
            pass
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{model_dir}: no usable tokenizer files (expected tokenizer.json)")
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    except Exception as exc:  # the tokenizers library raises its own exception types for a bad file
        raise InputError(f"{path}: not a usable tokenizer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def load_float_model(model_dir: Path) -> nn.Module:
    from transformers import AutoModelForCausalLM

    from scalinglab.quant.checks import read_config

    model_dir = Path(model_dir)
    meta = read_config(model_dir)  # a JSON object that asks to run no code
    if meta.get("model_type") == LADDER_MODEL_TYPE:
        from scalinglab.ladder.hf import load_model

        return load_model(model_dir)
    if not (model_dir / "model.safetensors").is_file() and not (model_dir / "model.safetensors.index.json").is_file():
        raise InputError(f"{model_dir}: no model.safetensors; weights are read only from safetensors files")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-tensor bar is noise on stderr, where our one-line errors go
    try:
        # use_safetensors: never fall back to pickle-based .bin weights.
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
    except Exception as exc:
        raise InputError(f"{model_dir}: could not load the checkpoint with transformers: {exc}") from None
    return model.eval()


def text_to_batches(text: str, tokenizer, seq_len: int, n_seqs: int | None = None, batch_size: int = 8,
                    source: str = "text") -> list[torch.Tensor]:
    """Tokenize ``text`` and cut it into non-overlapping (batch × seq_len) id tensors, at most ``n_seqs``
    sequences (all of them when None)."""
    if seq_len < 1:
        raise InputError(f"--seq-len: {seq_len} must be >= 1")
    if n_seqs is not None and n_seqs < 1:
        raise InputError(f"{source}: the number of sequences must be >= 1 (got {n_seqs})")
    ids = tokenizer(text)["input_ids"] if not isinstance(text, list) else text
    n = len(ids) // seq_len
    if n == 0:
        raise InputError(f"{source}: {len(ids)} tokens is shorter than one sequence of {seq_len}")
    if n_seqs is not None:
        n = min(n, n_seqs)
    seqs = torch.tensor(ids[: n * seq_len], dtype=torch.long).reshape(n, seq_len)
    return list(seqs.split(batch_size))


def read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: expected a text file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    return text
