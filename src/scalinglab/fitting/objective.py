"""The fitting objective: Σ_i w_i · Huber_δ(log L̂_i − log L_i), batched over parameter vectors.

Hoffmann et al. (2022, App. D.2) and Besiroglu et al. (2024) minimise the **sum** (not the mean) of
the Huber loss of log-loss residuals with δ = 1e-3: quadratic for small residuals, linear for
outliers, so a few bad runs cannot drag the fit. Optional per-point weights ``w`` (S, n) let one
call evaluate S different data sets at once — bootstrap replicates are multinomial weights on the
original points — which is what makes 1,000 refits cheap.

δ = 1e-3 (the published convention) is far below the ~1 % noise of real runs, so the objective is
nearly L1 there, and the bootstrap percentile intervals of such a fit over-cover. :func:`auto_delta`
gives the data-driven alternative: δ = 1.345·σ̂, σ̂ = 1.4826·MAD of a first fit's residuals — Huber's
(1964) tuning constant, 95 % efficient at normal noise while still bounding outliers' influence
(Huber & Ronchetti 2009, §4.2), with the normalised median absolute deviation as the robust scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.fitting.design import DesignPoints, group_rows, groupable
from scalinglab.laws.base import Law

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, App. D.2; Besiroglu et al. 2024
HUBER_TUNING = 1.345  # Huber 1964: 95 % asymptotic efficiency at the normal
MAD_TO_SIGMA = 1.482602218505602  # 1 / Φ⁻¹(3/4): the MAD of N(0, σ²) is σ / 1.4826
AUTO_DELTA_FLOOR = 1e-9  # noise-free data have MAD 0; δ must stay > 0


def robust_scale(residuals: np.ndarray) -> float:
    """σ̂ = 1.4826 · median |r − median r| (the normalised MAD)."""
    r = np.asarray(residuals, dtype=float)
    return float(MAD_TO_SIGMA * np.median(np.abs(r - np.median(r))))


def auto_delta(residuals: np.ndarray) -> float:
    """Data-driven Huber δ: 1.345 × the normalised MAD of a first fit's log-loss residuals."""
    return max(HUBER_TUNING * robust_scale(residuals), AUTO_DELTA_FLOOR)


def parse_delta(value) -> float | str:
    """``--huber-delta``: "auto" or a number > 0 (as float); anything else is an InputError."""
    from scalinglab.errors import InputError

    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--huber-delta: {value!r} is not a number or 'auto'") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or not value > 0:
        raise InputError(f"--huber-delta: {value!r} must be 'auto' or a finite number > 0")
    return float(value)


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber_δ(r) = r²/2 for |r| ≤ δ, else δ·(|r| − δ/2)."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float) -> np.ndarray:
    """ψ(r) = dHuber/dr = clip(r, −δ, δ)."""
    return np.clip(r, -delta, delta)


class HuberObjective:
    """f(θ) and ∇f(θ) for a batch of parameter vectors θ (S, P).

    ``weights`` is None (every point once), (n,) or (S_total, n) — one data set per batch row; then
    ``rows`` tells which of the S_total data sets the θ rows belong to.
    """

    def __init__(self, law: Law, x: Mapping[str, np.ndarray], loss: np.ndarray, delta: float = HUBER_DELTA,
                 weights: np.ndarray | None = None, fused: bool = True,
                 threads: bool = True, group: bool = True, design: DesignPoints | None = None):
        self.law = law
        self.x = dict(x)
        self.log_loss = np.log(np.asarray(loss, dtype=float))
        self.delta = float(delta)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        # Chinchilla on shared inputs has a compiled fused kernel; every other law takes the NumPy path.
        self.fused = fused and law.name == "chinchilla" and np.ndim(self.x.get("logN")) == 1
        self.threads = threads  # let the fused kernel split rows across threads (off inside a thread pool)
        self._compiled = None
        # Rows with identical prepared inputs share one prediction: evaluate the law once per design
        # point and sum the Huber terms of its rows exactly in O(log m) (``design.py``). ``group=False``
        # keeps the plain row-by-row sum (the reference the grouped sums are tested against).
        self.design = None
        n = self.log_loss.size
        if group and (design is not None or groupable(self.x, n)):
            if design is None:
                design = group_rows(list(self.x.values()), self.log_loss, repeats_only=not self.fused)
            if design is not None and (self.fused or design.n_points < n):
                self.design = design
        if self.fused:
            from scalinglab.fitting.fused import ChinchillaData

            self._compiled = ChinchillaData(self.x["logN"], self.x["logD"], self.log_loss, self.delta, self.weights,
                                            design=self.design)
        elif self.design is not None:
            self._x_points = {k: v[self.design.index] for k, v in self.x.items()}
            self._prefix = self.design.prefix(self.weights)

    @property
    def compiled(self):
        """The compiled Chinchilla path (objective and whole L-BFGS runs), or None for the NumPy path."""
        return self._compiled

    def _weights(self, rows: np.ndarray | None):
        if self.weights is None or self.weights.ndim == 1:
            return self.weights
        return self.weights if rows is None else self.weights[rows]

    def _replicates(self, S: int, rows: np.ndarray | None):
        """Weight row of each θ row for the grouped sums: ``rows``, or θ row s ↔ data set s, or row 0."""
        if self.weights is None or self.weights.ndim == 1:
            return None
        return np.arange(S) if rows is None else np.asarray(rows)

    def value(self, theta: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        if self.design is not None and self._compiled is None:
            pred = self.law.log_predict(theta, self._x_points)
            return self.design.huber(pred, self.delta, self._prefix, self._replicates(len(theta), rows))[0]
        if self._compiled is not None:
            return self.value_and_grad(theta, rows)[0]
        pred = self.law.log_predict(theta, self.x)
        h = huber(pred - self.log_loss, self.delta)
        w = self._weights(rows)
        return (h if w is None else h * w).sum(axis=-1)

    def value_and_grad(self, theta: np.ndarray, rows: np.ndarray | None = None):
        if self._compiled is not None:
            if self.weights is not None and self.weights.ndim == 2 and rows is None:
                rows = np.arange(len(theta))
            return self._compiled.value_and_grad(theta, rows, parallel=self.threads)  # guarded in the kernel
        if self.design is not None:
            pred, vjp = self.law.value_and_vjp(theta, self._x_points)
            f, psi = self.design.huber(pred, self.delta, self._prefix, self._replicates(len(theta), rows))
            return self._guard(f, vjp(psi))
        pred, vjp = self.law.value_and_vjp(theta, self.x)
        r = pred - self.log_loss
        h = huber(r, self.delta)
        psi = huber_grad(r, self.delta)
        w = self._weights(rows)
        if w is not None:
            h = h * w
            psi = psi * w
        return self._guard(h.sum(axis=-1), vjp(psi))

    @staticmethod
    def _guard(f, g):
        bad = ~np.isfinite(f) | ~np.isfinite(g).all(axis=1)
        if bad.any():  # a start wandered where the law overflows: make it look uphill
            f = np.where(bad, np.inf, f)
            g = np.where(bad[:, None], 0.0, g)
        return f, g

    def scalar(self, row: int | None = None):
        """f, ∇f for one θ (P,) — the form scipy.optimize wants."""
        rows = None if row is None else np.array([row])

        def fg(theta: np.ndarray):
            f, g = self.value_and_grad(theta[None, :], rows)
            return float(f[0]), g[0].copy()

        return fg
