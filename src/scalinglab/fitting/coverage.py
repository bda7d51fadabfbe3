"""Do the bootstrap intervals cover? Simulate data sets from known constants, fit, count hits.

Each data set is a grid of runs drawn from Chinchilla with the published constants (Hoffmann et al.
2022, Eq. 10) and multiplicative log-normal noise; :func:`scalinglab.fitting.api.fit` fits it with a
bootstrap, and we record whether each percentile interval contains the true value — for E, α, β and
the loss extrapolated to a model 4× larger than the largest fitted (7e10 parameters, 1.4e12 tokens).
A 95 % interval should cover in ~95 % of the data sets; the Monte-Carlo standard error of a coverage
estimated from S sets is √(p(1−p)/S) (1.5 points at S = 200, 1.1 at S = 400).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scalinglab.fitting.synthetic import CHINCHILLA_PUBLISHED, chinchilla_grid

EXTRAPOLATION = {"params": 7e10, "tokens": 1.4e12}  # Chinchilla itself: 4.4× the largest grid model
QUANTITIES = ("E", "alpha", "beta", "loss_extrapolated")


@dataclass(frozen=True)
class CoverageConfig:
    n_sets: int = 200
    noise: float = 0.01  # σ of log L
    huber_delta: float | str = "auto"
    n_boot: int = 400
    levels: tuple[float, ...] = (0.95,)
    n_sizes: int = 12
    n_tokens: int = 20
    seed: int = 0

    def __post_init__(self):
        from scalinglab.errors import InputError

        if self.n_sets < 1 or self.n_boot < 10:
            raise InputError("coverage: need n_sets >= 1 and n_boot >= 10")
        if not all(0 < lv < 1 for lv in self.levels):
            raise InputError(f"coverage: levels {self.levels} must lie in (0, 1)")


@dataclass
class CoverageResult:
    config: CoverageConfig
    hits: dict[float, dict[str, int]] = field(default_factory=dict)  # level → quantity → data sets covered
    widths: dict[float, dict[str, list[float]]] = field(default_factory=dict)  # level → quantity → widths
    deltas: list[float] = field(default_factory=list)  # the δ each fit used
    failed_refits: int = 0

    def coverage(self, level: float, quantity: str) -> float:
        return self.hits[level][quantity] / self.config.n_sets

    def standard_error(self, level: float) -> float:
        return float(np.sqrt(level * (1 - level) / self.config.n_sets))


def truth() -> dict[str, float]:
    """The true value of every quantity whose interval is checked."""
    from scalinglab.laws.registry import get_law

    loss = get_law("chinchilla").predict(CHINCHILLA_PUBLISHED, {k: np.array([v]) for k, v in EXTRAPOLATION.items()})
    return {"E": CHINCHILLA_PUBLISHED["E"], "alpha": CHINCHILLA_PUBLISHED["alpha"],
            "beta": CHINCHILLA_PUBLISHED["beta"], "loss_extrapolated": float(loss[0])}


def simulate_coverage(config: CoverageConfig, progress: Callable[[int], None] | None = None) -> CoverageResult:
    """Fit ``config.n_sets`` simulated data sets with a bootstrap; count interval hits per level."""
    from scalinglab.fitting.api import fit
    from scalinglab.laws.registry import get_law
    from scalinglab.planning.predict import log_loss_batch, theta_samples

    law = get_law("chinchilla")
    true = truth()
    out = CoverageResult(config, hits={lv: dict.fromkeys(QUANTITIES, 0) for lv in config.levels},
                         widths={lv: {q: [] for q in QUANTITIES} for lv in config.levels})
    seeds = np.random.SeedSequence(config.seed).generate_state(config.n_sets)
    for i, s in enumerate(seeds):
        table = chinchilla_grid(config.n_sizes, config.n_tokens, noise=config.noise, seed=int(s))
        result = fit(table, "chinchilla", huber_delta=config.huber_delta, bootstrap=config.n_boot,
                     seed=int(s) + 1, jobs=1)
        out.deltas.append(result.huber_delta)
        out.failed_refits += result.bootstrap.failed
        samples = {q: np.asarray(result.bootstrap.samples[q]) for q in ("E", "alpha", "beta")}
        samples["loss_extrapolated"] = np.exp(log_loss_batch(law, theta_samples(law, result), EXTRAPOLATION)[:, 0])
        for lv in config.levels:
            tail = 100 * (1 - lv) / 2
            for q in QUANTITIES:
                lo, hi = np.nanpercentile(samples[q], [tail, 100 - tail])
                out.hits[lv][q] += int(lo <= true[q] <= hi)
                out.widths[lv][q].append(float(hi - lo))
        if progress:
            progress(i + 1)
    return out
