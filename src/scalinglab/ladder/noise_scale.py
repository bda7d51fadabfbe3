"""The gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018), measured without extra passes.

McCandlish et al. ("An Empirical Model of Large-Batch Training", 2018, §2.2) show that the critical
batch size is predicted by the noise scale B_noise, and its simple form B_simple = tr(Σ)/|G|², where G
is the true gradient and Σ the per-example gradient covariance. The squared norm of a mini-batch
gradient of B examples (drawn independently) has expectation

    E|G_B|² = |G|² + tr(Σ)/B,

so the squared norms at two batch sizes B_small < B_big give unbiased estimates (their Appendix A.1):

    |G|²   ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
    tr(Σ)  ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)

During training with gradient accumulation both come for free: every micro-batch gradient is a
G_small (B_small = micro-batch size) and their mean, the optimizer's gradient, is G_big (B_big = the
step's batch). :class:`NoiseScaleTracker` reads the micro-batch gradients as the increments of the
accumulated ``.grad`` (one copy of the gradients, no extra forward or backward pass). Each step's two
estimates are noisy (and |G|² can come out negative), so, as the paper advises, each is smoothed by an
exponential moving average *before* their ratio is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["unbiased_estimates", "b_simple", "NoiseScaleEMA", "NoiseScaleTracker", "EMA_DECAY"]

EMA_DECAY = 0.95  # per optimizer step: averages over ~20 steps, about a twentieth of a short ladder run


def unbiased_estimates(sq_small, sq_big, b_small, b_big):
    """(|G|², tr(Σ)) from mean squared gradient norms at batch sizes b_small < b_big (McCandlish et al. A.1)."""
    sq_small, sq_big = np.asarray(sq_small, float), np.asarray(sq_big, float)
    g2 = (b_big * sq_big - b_small * sq_small) / (b_big - b_small)
    trace = (sq_small - sq_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def b_simple(trace, g2):
    """B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, Eq. 2.9)."""
    return np.asarray(trace, float) / np.asarray(g2, float)


@dataclass
class NoiseScaleEMA:
    """Bias-corrected exponential moving averages of |G|² and tr(Σ); B_simple is their ratio."""

    decay: float = EMA_DECAY
    g2: float = 0.0
    trace: float = 0.0
    weight: float = 0.0  # Σ of the decayed weights, for the bias correction of a fresh average

    def update(self, g2: float, trace: float) -> None:
        self.g2 = self.decay * self.g2 + (1 - self.decay) * float(g2)
        self.trace = self.decay * self.trace + (1 - self.decay) * float(trace)
        self.weight = self.decay * self.weight + (1 - self.decay)

    def value(self) -> dict | None:
        """{"b_simple", "g2", "trace"} of the smoothed estimates, or None before the first update."""
        if self.weight == 0.0:
            return None
        g2, trace = self.g2 / self.weight, self.trace / self.weight
        return {"b_simple": float(trace / g2) if g2 > 0 else float("nan"), "g2": float(g2), "trace": float(trace)}


class NoiseScaleTracker:
    """Squared norms of micro-batch gradients and of their mean, from the accumulated ``.grad`` increments.

    Usage inside a training step with ``k`` micro-batches of ``b`` examples each, the loss of each scaled
    by 1/k before ``backward()`` (so the accumulated gradient is the mean)::

        tracker.begin_step()
        for micro in range(k):
            (loss / k).backward()
            tracker.after_micro()
        tracker.end_step()   # before clipping or the optimizer touches .grad

    ``b`` counts the units the gradient averages over (sequences for a language model whose loss is the
    mean over the micro-batch's tokens).
    """

    def __init__(self, params, micro_batch: int, accum: int, decay: float = EMA_DECAY):
        if accum < 2:
            raise ValueError("the gradient noise scale needs at least 2 micro-batches per step")
        self.params = [p for p in params if p.requires_grad]
        self.b, self.k = int(micro_batch), int(accum)
        self.ema = NoiseScaleEMA(decay)
        self._prev: list[torch.Tensor] | None = None
        self._sq_micro = 0.0
        self._count = 0
        self.last: tuple[float, float] | None = None  # this step's unsmoothed (|G|², tr(Σ))

    def begin_step(self) -> None:
        self._prev = None
        self._sq_micro, self._count = 0.0, 0

    @torch.no_grad()
    def after_micro(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        sq = 0.0
        for i, g in enumerate(grads):
            inc = g if self._prev is None else g - self._prev[i]
            sq += float(inc.double().pow(2).sum())
        # The increment is g_i / k (the loss was scaled by 1/k): |g_i|² = k²·|increment|².
        self._sq_micro += sq * self.k * self.k
        self._count += 1
        self._prev = [g.detach().clone() for g in grads]

    @torch.no_grad()
    def end_step(self) -> None:
        if self._count != self.k or self._prev is None:
            return  # a partial step (interrupted): nothing to estimate
        sq_big = sum(float(g.double().pow(2).sum()) for g in self._prev)
        g2, trace = unbiased_estimates(self._sq_micro / self.k, sq_big, self.b, self.b * self.k)
        self.last = (float(g2), float(trace))
        self.ema.update(*self.last)
        self._prev = None

    def value(self) -> dict | None:
        return self.ema.value()
