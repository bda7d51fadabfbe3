"""Optimal learning rate and batch size as power laws of model and data size.

    η*(N, D) = c·N^a·D^b        (Li et al. 2025, "Predictable Scale", Eq. 2: 1.79·N^-0.713·D^0.307)
    B*(D)    = c·D^b            (Li et al. 2025, Eq. 3: 0.58·D^0.571 tokens; DeepSeek LLM, Bi et al.
                                 2024, Eq. 1 gives both as power laws of compute instead)

N is non-embedding parameters, D training tokens. The laws are fitted to *optima*: per (N, D) the
minimum of the loss over a learning-rate (or batch-size) sweep, located by a parabola in log η (log B)
(:mod:`scalinglab.fitting.sweep_optima`); the rows of the table they are fitted to carry the optimum
in the ``lr`` (``batch_size``) column. Units of B are whatever the table uses (sequences or tokens).
"""

from __future__ import annotations

from scalinglab.laws.monomial import Monomial

__all__ = ["OptimalLR", "OptimalBatch"]


class OptimalLR(Monomial):
    """``η* = c·N^a·D^b`` (Li et al. 2025, Eq. 2)."""

    name = "optimal_lr"
    columns = ("params", "tokens")
    exponents = ("a", "b")
    target = "lr"
    formula = "lr* = c·N^a·D^b"


class OptimalBatch(Monomial):
    """``B* = c·D^b`` (Li et al. 2025, Eq. 3)."""

    name = "optimal_batch"
    columns = ("tokens",)
    exponents = ("b",)
    target = "batch_size"
    formula = "B* = c·D^b"
