"""A small decoder-only transformer (GPT) in plain PyTorch, one frozen config.

    from scalinglab.ladder.model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=64, seq_len=64, d_model=64, n_layer=2, n_head=2))
    logits = model(idx)                  # (B, T, V)
    logits, loss = model(idx, targets)   # mean next-token cross-entropy in nats

Options the ladder sweeps:
- ``norm``: ``layernorm`` (weight + bias) or ``rmsnorm`` (weight only).
- ``placement``: ``pre`` (GPT-2: x + f(norm(x))), ``post`` (original Transformer: norm(x + f(x))) or
  ``peri`` (Peri-LN, Kim et al. 2025: x + norm_out(f(norm_in(x))), a norm on both sides of each sublayer).
- ``parametrization``: ``sp`` (standard) or ``mup`` (μP, Yang et al. 2022, Tensor Programs V, Table 3 for
  Adam): with width multiplier m = d_model / base_width, hidden matrices get init std σ/√m and learning rate
  η/m, attention logits are scaled by 1/d_head instead of 1/√d_head, and output logits are multiplied by
  1/m; embeddings, norms and biases keep η. A learning rate tuned at ``base_width`` then transfers.

Q, K, V, O and both MLP matrices are plain ``nn.Linear`` and norms are ``nn.LayerNorm`` / :class:`RMSNorm`
with a ``weight`` (and ``bias``), so model surgery (quantization) finds them by type. Embeddings are tied.
Parameter and FLOP counts are in :mod:`scalinglab.ladder.flops`; the HF-compatible checkpoint layout in
:mod:`scalinglab.ladder.hf`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.errors import InputError

__all__ = ["GPTConfig", "GPT", "RMSNorm"]

NORMS = ("layernorm", "rmsnorm")
PLACEMENTS = ("pre", "post", "peri")
PARAMETRIZATIONS = ("sp", "mup")
NORM_EPS = 1e-5  # GPT-2's layer_norm_epsilon, so checkpoints open in transformers unchanged


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 256  # V
    seq_len: int = 128  # context T (learned positional embeddings)
    d_model: int = 64  # width d
    n_layer: int = 2  # depth L
    n_head: int = 2  # attention heads; d_head = d_model / n_head
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio · d
    norm: str = "layernorm"
    placement: str = "pre"
    parametrization: str = "sp"
    base_width: int = 64  # μP: the width at which hyperparameters were tuned
    bias: bool = True  # biases on every linear and layernorm (GPT-2 style)
    init_std: float = 0.02  # σ of weights (GPT-2); residual projections get σ/√(2L)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_layer", "n_head", "mlp_ratio", "base_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"model config: '{name}' = {value!r}, expected a positive integer")
        if self.d_model % self.n_head:
            raise InputError(f"model config: d_model={self.d_model} is not divisible by n_head={self.n_head}")
        for name, allowed in (("norm", NORMS), ("placement", PLACEMENTS), ("parametrization", PARAMETRIZATIONS)):
            if getattr(self, name) not in allowed:
                raise InputError(f"model config: '{name}' = {getattr(self, name)!r}, expected one of {', '.join(allowed)}")
        if self.init_std <= 0:
            raise InputError(f"model config: 'init_std' = {self.init_std!r}, expected > 0")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head

    @property
    def width_mult(self) -> float:
        """μP width multiplier m = d / d_base (1 under the standard parametrization)."""
        return self.d_model / self.base_width if self.parametrization == "mup" else 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    """x / rms(x) · weight (Zhang & Sennrich 2019); no bias, no mean subtraction."""

    def __init__(self, d: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model)
    return nn.LayerNorm(cfg.d_model, eps=NORM_EPS, bias=cfg.bias)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        d = cfg.d_model
        self.n_head = cfg.n_head
        self.q_proj = nn.Linear(d, d, bias=cfg.bias)
        self.k_proj = nn.Linear(d, d, bias=cfg.bias)
        self.v_proj = nn.Linear(d, d, bias=cfg.bias)
        self.o_proj = nn.Linear(d, d, bias=cfg.bias)
        # μP: 1/d_head keeps attention logits O(1) as width grows (TP5 §4); SP: 1/√d_head.
        self.scale = 1.0 / cfg.d_head if cfg.parametrization == "mup" else 1.0 / math.sqrt(cfg.d_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        projs = (self.q_proj, self.k_proj, self.v_proj)
        if all(type(p) is nn.Linear and not (p._forward_hooks or p._forward_pre_hooks) for p in projs):
            # One matmul for Q, K and V: same result as three, fewer kernel launches on small widths.
            w = torch.cat([p.weight for p in projs])
            b = torch.cat([p.bias for p in projs]) if self.q_proj.bias is not None else None
            qkv = F.linear(x, w, b)
        else:  # replaced (quantized) or hooked (calibrated) modules are called as modules
            qkv = torch.cat([p(x) for p in projs], dim=-1)
        q, k, v = qkv.view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)  # (B, nh, T, hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=cfg.bias)
        self.fc_out = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.placement = cfg.placement
        self.norm_attn = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm_mlp = make_norm(cfg)
        self.mlp = MLP(cfg)
        if cfg.placement == "peri":
            self.norm_attn_out = make_norm(cfg)
            self.norm_mlp_out = make_norm(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            x = x + self.attn(self.norm_attn(x))
            return x + self.mlp(self.norm_mlp(x))
        if self.placement == "post":
            x = self.norm_attn(x + self.attn(x))
            return self.norm_mlp(x + self.mlp(x))
        x = x + self.norm_attn_out(self.attn(self.norm_attn(x)))
        return x + self.norm_mlp_out(self.mlp(self.norm_mlp(x)))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        # Post-LN blocks already end in a norm; pre/peri need a final one before the unembedding.
        self.norm_f = make_norm(cfg) if cfg.placement != "post" else nn.Identity()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        cfg = self.config
        hidden_std = cfg.init_std / math.sqrt(cfg.width_mult)
        for name, p in self.named_parameters():
            if p.ndim < 2:  # norm weights 1, biases 0
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.startswith(("wte", "wpe")):
                nn.init.normal_(p, std=cfg.init_std)
            elif name.endswith(("o_proj.weight", "fc_out.weight")):
                nn.init.normal_(p, std=hidden_std / math.sqrt(2 * cfg.n_layer))  # GPT-2 residual scaling
            else:
                nn.init.normal_(p, std=hidden_std)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on matrices only; μP divides the hidden matrices' lr by the width multiplier."""
        hidden, embed, other = [], [], []
        for name, p in self.named_parameters():
            (other if p.ndim < 2 else embed if name.startswith(("wte", "wpe")) else hidden).append(p)
        return [
            {"params": hidden, "lr": lr / self.config.width_mult, "weight_decay": weight_decay},
            {"params": embed, "lr": lr, "weight_decay": weight_decay},
            {"params": other, "lr": lr, "weight_decay": 0.0},
        ]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        x = self.norm_f(x)
        logits = F.linear(x, self.wte.weight)  # tied unembedding, (B, T, V)
        if self.config.parametrization == "mup":
            logits = logits / self.config.width_mult
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
