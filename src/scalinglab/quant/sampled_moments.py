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

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["sample_sequences", "input_moments"]

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample_sequences(model: nn.Module, forward: Forward, n_seqs: int, length: int, seed: int = 0) -> torch.Tensor:
    """(n_seqs × length) token ids sampled from ``model``: a uniformly random first token, then each next token
    drawn from the softmax of the model's logits at the last position (full recompute per step, no cache)."""
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)
    vocab = forward(model, torch.zeros(1, 1, dtype=torch.long, device=device)).shape[-1]
    ids = torch.randint(0, vocab, (n_seqs, 1), generator=gen)
    for _ in range(length - 1):
        logits = forward(model, ids.to(device))[:, -1].float().cpu()
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)
        ids = torch.cat([ids, nxt], dim=1)
    return ids.to(device)


@torch.no_grad()
def input_moments(model: nn.Module, linears: dict[str, nn.Module], batches: list[torch.Tensor],
                  forward: Forward) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{linear name: (mean, variance) of each input channel} over every token of ``batches`` (float64 sums)."""
    sums: dict[str, list] = {}

    def hook(name):
        def record(_m, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double().cpu()
            acc = sums.setdefault(name, [0, torch.zeros(x.shape[1], dtype=torch.float64),
                                         torch.zeros(x.shape[1], dtype=torch.float64)])
            acc[0] += x.shape[0]
            acc[1] += x.sum(0)
            acc[2] += x.pow(2).sum(0)
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in linears.items()]
    try:
        for ids in batches:
            forward(model, ids)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, (n, s1, s2) in sums.items():
        mean = s1 / n
        out[name] = (mean.float(), (s2 / n - mean.pow(2)).clamp_min(0).float())
    return out
