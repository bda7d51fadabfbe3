"""Per-channel statistics of every target linear's input, gathered with forward hooks.

Calibration runs the float model on N sequences and keeps, for each input channel j of each linear,
``max_j``, ``min_j`` and ``amax_j = max|X_j|`` (SmoothQuant's s_j, OutlierTune's z_j and Δ_j come from
these), plus what the LLM.int8() paper's outlier analysis reports: how many tokens put a value of
magnitude ≥ threshold in channel j.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from scalinglab.quant.config import OUTLIER_THRESHOLD

__all__ = ["ChannelStats", "calibrate", "linear_weight"]


@dataclass
class ChannelStats:
    """Running per-input-channel statistics of one linear's input X (tokens × K)."""

    k: int
    threshold: float = OUTLIER_THRESHOLD
    max: torch.Tensor = field(init=False)
    min: torch.Tensor = field(init=False)
    outlier_tokens: torch.Tensor = field(init=False)  # tokens with |x_j| ≥ threshold, per channel
    tokens_touched: int = 0  # tokens with any outlier value
    tokens: int = 0

    def __post_init__(self) -> None:
        self.max = torch.full((self.k,), -torch.inf)
        self.min = torch.full((self.k,), torch.inf)
        self.outlier_tokens = torch.zeros(self.k, dtype=torch.long)

    @property
    def amax(self) -> torch.Tensor:
        return torch.maximum(self.max.abs(), self.min.abs())

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, self.k).float()
        self.max = torch.maximum(self.max, x.amax(0))
        self.min = torch.minimum(self.min, x.amin(0))
        hit = x.abs() >= self.threshold
        self.outlier_tokens += hit.sum(0)
        self.tokens_touched += int(hit.any(1).sum())
        self.tokens += x.shape[0]

    def outlier_cols(self) -> torch.Tensor:
        """Channels that reached the threshold at least once (LLM.int8's outlier dimensions)."""
        return (self.amax >= self.threshold).nonzero().squeeze(1)


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight as (out × in) for ``nn.Linear`` and GPT-2's ``Conv1D`` (which stores in × out)."""
    if type(module).__name__ == "Conv1D":
        return module.weight.t()
    return module.weight


@torch.no_grad()
def calibrate(model: nn.Module, targets: dict[str, nn.Module], batches: Iterable[torch.Tensor],
              forward: Callable[[nn.Module, torch.Tensor], torch.Tensor], threshold: float = OUTLIER_THRESHOLD
              ) -> dict[str, ChannelStats]:
    """Run ``forward(model, batch)`` on every batch and return input statistics for each target."""
    stats = {name: ChannelStats(linear_weight(m).shape[1], threshold) for name, m in targets.items()}
    observe_inputs(model, targets, batches, forward, lambda name, x: stats[name].update(x))
    return stats


@torch.no_grad()
def observe_inputs(model: nn.Module, targets: dict[str, nn.Module], batches: Iterable[torch.Tensor],
                   forward: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                   record: Callable[[str, torch.Tensor], None]) -> None:
    """Run ``forward(model, batch)`` on every batch, calling ``record(name, input)`` with each target's input
    (forward pre-hooks, removed afterwards whatever happens)."""
    handles = [m.register_forward_pre_hook(lambda _m, args, n=name: record(n, args[0])) for name, m in targets.items()]
    try:
        for batch in batches:
            forward(model, batch)
    finally:
        for h in handles:
            h.remove()
