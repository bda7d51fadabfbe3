"""Exact parameter counts and training FLOPs per token of the ladder GPT, from its config alone.

Conventions (what the run store records):
- ``params`` (N) is the **non-embedding** count (Kaplan et al. 2020, §2.1): every parameter except the
  token embedding V·d and the positional embedding T·d. The unembedding is tied to the token embedding,
  so it adds nothing. Norm weights/biases and all linear biases count.
- ``flops_per_token`` C/D = 6·N + 6·L·T·d + 6·d·V: forward+backward of every matmul weight (6N, Kaplan
  Table 1), the attention score and value products (Kaplan's 2·L·n_ctx·d_attn forward term, ×3 for training),
  and the tied unembedding matmul (Hoffmann et al. 2022, App. F counts it). Norms, softmax and biases'
  elementwise work are below 1% and left out, as in both papers.
"""

from __future__ import annotations

from scalinglab.ladder.model import GPTConfig

__all__ = ["param_counts", "non_embedding_params", "total_params", "flops_per_token"]

TRAIN_FLOPS_PER_MAC = 6  # 2 (multiply+add) × 3 (forward, input grad, weight grad)


def _norm_params(cfg: GPTConfig) -> int:
    if cfg.norm == "rmsnorm":
        return cfg.d_model
    return 2 * cfg.d_model if cfg.bias else cfg.d_model


def param_counts(cfg: GPTConfig) -> dict[str, int]:
    """Per-part counts: embedding, positional, attention, mlp, norms, total, non_embedding."""
    d, r, b = cfg.d_model, cfg.mlp_ratio, int(cfg.bias)
    attention = cfg.n_layer * (4 * d * d + 4 * d * b)
    mlp = cfg.n_layer * (2 * r * d * d + r * d * b + d * b)
    norms_per_block = 4 if cfg.placement == "peri" else 2
    final_norm = 0 if cfg.placement == "post" else 1
    norms = (cfg.n_layer * norms_per_block + final_norm) * _norm_params(cfg)
    embedding = cfg.vocab_size * d
    positional = cfg.seq_len * d
    non_embedding = attention + mlp + norms
    return {
        "embedding": embedding, "positional": positional, "attention": attention, "mlp": mlp, "norms": norms,
        "non_embedding": non_embedding, "total": non_embedding + embedding + positional,
    }


def non_embedding_params(cfg: GPTConfig) -> int:
    return param_counts(cfg)["non_embedding"]


def total_params(cfg: GPTConfig) -> int:
    return param_counts(cfg)["total"]


def flops_per_token(cfg: GPTConfig) -> int:
    """Training FLOPs per token: 6N + 6·L·T·d (attention) + 6·d·V (unembedding)."""
    attention_products = cfg.n_layer * cfg.seq_len * cfg.d_model
    unembedding = cfg.d_model * cfg.vocab_size
    return TRAIN_FLOPS_PER_MAC * (non_embedding_params(cfg) + attention_products + unembedding)
