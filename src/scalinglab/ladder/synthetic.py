"""A synthetic language with an exactly known entropy rate: a sparse random Markov chain of order k.

Every context (the previous k tokens, V^k of them) allows ``branching`` successors drawn at random from
the V-token vocabulary, with probabilities from a symmetric Dirichlet(``concentration``). The chain on
contexts is ergodic for our defaults; its stationary distribution μ (power iteration) gives the entropy
rate H = Σ_c μ(c)·H(P(·|c)) nats/token (Cover & Thomas, Thm 4.2.4) — the irreducible loss E a perfect
model reaches on positions with at least k tokens of context.

A model sees windows X_0..X_T cut from the stationary process and predicts X_1..X_T from their prefixes,
so position j < k has less context: :meth:`MarkovSource.entropy_floor` returns the exact expected loss of
the *true* law averaged over the predicted positions 1..T (H(X_1|X_0), …, then H), the floor for the mean
validation loss we record.

Sequences are sampled independently (each from μ), so training never repeats data: D is fresh tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from scalinglab.errors import InputError

__all__ = ["MarkovConfig", "MarkovSource"]

POWER_ITERATIONS = 10_000
POWER_TOL = 1e-13
# The dense table is (V^k × V) float64, held as P, its cumulative sum and a power-iteration product.
TABLE_COPIES = 3
MAX_TABLE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class MarkovConfig:
    vocab_size: int = 64  # V
    order: int = 1  # k: tokens of context the next-token law depends on
    branching: int = 8  # successors allowed per context (sparsity)
    concentration: float = 1.0  # Dirichlet α of each context's successor probabilities
    seed: int = 0  # seeds the chain itself (not the samples)

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.order < 1 or not 1 <= self.branching <= self.vocab_size:
            raise InputError(f"synthetic corpus: need vocab_size >= 2, order >= 1, 1 <= branching <= vocab_size; got {self}")
        # Compare exponents first: V**k itself is an integer of k·log10(V) digits (order = 2^31 would take minutes).
        if self.order * math.log2(self.vocab_size) > 20:
            raise InputError(f"synthetic corpus: vocab_size^order = {self.vocab_size}^{self.order} contexts is too many "
                             "(max 2^20)")
        table = TABLE_COPIES * 8 * self.vocab_size**self.order * self.vocab_size  # float64 P, cdf and a work copy
        if table > MAX_TABLE_BYTES:
            raise InputError(f"synthetic corpus: the transition table of vocab_size={self.vocab_size}, order={self.order} "
                             f"needs {table / 2**30:.3g} GiB (max {MAX_TABLE_BYTES / 2**30:g} GiB); "
                             "use a smaller vocabulary or order")
        if self.concentration <= 0:
            raise InputError(f"synthetic corpus: concentration must be > 0, got {self.concentration}")

    def to_dict(self) -> dict:
        return asdict(self)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats along the last axis (0·log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


class MarkovSource:
    """The chain: transition table P (V^k × V), its stationary law and exact entropies; a sampler."""

    def __init__(self, cfg: MarkovConfig = MarkovConfig()):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        V, n_ctx = cfg.vocab_size, cfg.vocab_size**cfg.order
        P = np.zeros((n_ctx, V))
        for c in range(n_ctx):
            succ = rng.choice(V, size=cfg.branching, replace=False)
            P[c, succ] = rng.dirichlet(np.full(cfg.branching, cfg.concentration))
        self.P = P
        self.cdf = np.cumsum(P, axis=1)
        self.cdf[:, -1] = 1.0  # guard against rounding: every u < 1 finds a successor

    def _next_context(self, ctx: np.ndarray, tok: np.ndarray) -> np.ndarray:
        # Context id = base-V number of the last k tokens, most recent last.
        return (ctx * self.cfg.vocab_size + tok) % (self.cfg.vocab_size**self.cfg.order)

    @cached_property
    def stationary(self) -> np.ndarray:
        """μ over contexts: the fixed point of the context chain, by power iteration."""
        V, n_ctx = self.cfg.vocab_size, self.cfg.vocab_size**self.cfg.order
        ctx = np.arange(n_ctx)
        mu = np.full(n_ctx, 1.0 / n_ctx)
        for _ in range(POWER_ITERATIONS):
            new = np.zeros(n_ctx)
            # Mass μ(c)·P(v|c) flows to context (c·V + v) mod V^k; averaging with the old μ removes periodicity.
            np.add.at(new, self._next_context(ctx[:, None], np.arange(V)[None, :]).ravel(), (mu[:, None] * self.P).ravel())
            new = 0.5 * (new + mu)
            if np.abs(new - mu).sum() < POWER_TOL:
                return new
            mu = new
        return mu

    @cached_property
    def entropy_rate(self) -> float:
        """H = Σ_c μ(c) H(P(·|c)) in nats per token."""
        return float(self.stationary @ _entropy(self.P))

    def conditional_entropy(self, j: int) -> float:
        """H(X_j | X_0..X_{j-1}) for a window started at stationarity (j < k: partial context)."""
        k, V = self.cfg.order, self.cfg.vocab_size
        if j >= k:
            return self.entropy_rate
        # Joint law of the last j+1 tokens of a stationary context window: marginalise μ over older tokens.
        joint = self.stationary.reshape((V,) * k).sum(axis=tuple(range(k - j - 1))).reshape(-1, V) if j + 1 < k else None
        if joint is None:  # j = k-1: joint of k tokens is μ itself
            joint = self.stationary.reshape(-1, V)
        prefix = joint.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.where(prefix > 0, joint / prefix, 0.0)
        return float(prefix[:, 0] @ _entropy(cond))

    def entropy_floor(self, seq_len: int) -> float:
        """Expected loss of the true law predicting X_1..X_T of a stationary window (the loss floor)."""
        return float(np.mean([self.conditional_entropy(j) for j in range(1, seq_len + 1)]))

    def sample(self, n: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
        """n independent windows of seq_len tokens from the stationary process, int64 (n, seq_len)."""
        k, V = self.cfg.order, self.cfg.vocab_size
        ctx = rng.choice(V**k, size=n, p=self.stationary)
        # The starting context supplies the first k tokens (its base-V digits, oldest first).
        digits = (ctx[:, None] // V ** np.arange(k - 1, -1, -1)[None, :]) % V
        out = np.empty((n, max(seq_len, k)), dtype=np.int64)
        out[:, :k] = digits
        u = rng.random((n, max(seq_len, k)))
        for t in range(k, max(seq_len, k)):
            tok = (u[:, t, None] > self.cdf[ctx]).sum(axis=1)
            out[:, t] = tok
            ctx = self._next_context(ctx, tok)
        return out[:, :seq_len]
