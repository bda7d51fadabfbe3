"""Input moments of every linear without data: let the float model write its own text, then average.

Data-free rounding that weighs channels by their input statistics (``squant.moment_codes``) needs each
linear's per-channel input mean μ_j and variance v_j. Without a data set, the model itself is the best
source of in-distribution text: LLM-QAT (Liu et al. 2023, "LLM-QAT: Data-Free Quantization Aware Training
for Large Language Models", §2.1) samples sequences token by token from the pretrained model, starting
from a random first token, and uses them in place of training data. Here ``sample_sequences`` does the same
(plain ancestral sampling at temperature 1, fixed seed) and ``input_moments`` runs the samples through the
float model with forward pre-hooks and returns, per linear, the mean and (population) variance of each input
channel over every sampled token.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from scalinglab.quant.calibrate import observe_inputs

__all__ = ["sample_sequences", "input_moments"]

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample_sequences(model: nn.Module, forward: Forward, n_seqs: int, length: int, seed: int = 0,
                     cache: bool = True) -> torch.Tensor:
    """(n_seqs × length) token ids sampled from ``model``: a uniformly random first token, then each next token
    drawn from the softmax of the model's logits at the last position. Hugging Face models that return a
    KV cache are stepped with it (``cache``); other models recompute the whole prefix per step."""
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)
    vocab = forward(model, torch.zeros(1, 1, dtype=torch.long, device=device)).shape[-1]
    ids = torch.randint(0, vocab, (n_seqs, 1), generator=gen)
    past, key = None, _cache_argument(model) if cache else None
    for _ in range(length - 1):
        if past is not None:
            out = model(input_ids=ids[:, -1:].to(device), use_cache=True, **{key: past})
            logits, past = out.logits[:, -1], out.get(key)
        elif key is not None:
            out = model(input_ids=ids.to(device), use_cache=True)
            logits, past = out.logits[:, -1], out.get(key)
        else:
            logits = forward(model, ids.to(device))[:, -1]
        probs = torch.softmax(logits.float().cpu(), dim=-1)
        ids = torch.cat([ids, torch.multinomial(probs, 1, generator=gen)], dim=1)
    return ids.to(device)


def _cache_argument(model: nn.Module) -> str | None:
    """The keyword a transformers causal LM takes its KV cache by (``cache`` from transformers 5,
    ``past_key_values`` before), or None for other models (ladder checkpoints: recompute)."""
    if getattr(model, "config", None) is None or not hasattr(model, "prepare_inputs_for_generation"):
        return None
    params = inspect.signature(model.forward).parameters
    return next((k for k in ("cache", "past_key_values") if k in params), None)


@torch.no_grad()
def input_moments(model: nn.Module, linears: dict[str, nn.Module], batches: list[torch.Tensor],
                  forward: Forward) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{linear name: (mean, variance) of each input channel} over every token of ``batches`` (float64 sums)."""
    sums: dict[str, list] = {}

    def record(name: str, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).double().cpu()
        acc = sums.setdefault(name, [0, torch.zeros(x.shape[1], dtype=torch.float64),
                                     torch.zeros(x.shape[1], dtype=torch.float64)])
        acc[0] += x.shape[0]
        acc[1] += x.sum(0)
        acc[2] += x.pow(2).sum(0)

    observe_inputs(model, linears, batches, forward, record)
    out = {}
    for name, (n, s1, s2) in sums.items():
        mean = s1 / n
        out[name] = (mean.float(), (s2 / n - mean.pow(2)).clamp_min(0).float())
    return out
