"""Loss-curve laws over learning-rate schedules: the per-step schedule and the Tissue et al. (2024) law.

A loss curve is a run's rows ``(run, step, lr, loss)``, sampled every few hundred steps after warm-up.
Schedule laws need the learning rate at *every* step, so :func:`reconstruct` rebuilds it:

* between samples, η is interpolated linearly (exact for constant and linear pieces; a cosine sampled
  every ~128 steps is off by < 0.2 % of η, the most near its floor; a step drop between two samples
  becomes a ramp over that sampling interval);
* before the first sample at step w, warm-up is assumed linear from 0 to η_w, so the warm-up area is
  S_W = η_w·w/2 (the multi-power-law repository warms up with ``linspace(0, peak, w)``: the same sum).

Tissue et al. (2024), "Scaling Law with Learning Rate Annealing", Eq. 1::

    L(s) = L0 + A·S1^-α − C·S2,     S1 = S_W + Σ_{i≤s} η_i   (forward area)
    m_i = λ·m_{i−1} + (η_{i−1} − η_i),   S2 = Σ_{i≤s} m_i      (annealing area, momentum λ)

λ = 0.999 as in the paper (it is fixed, not fitted: S2 is then precomputed once per curve).
Fitted as ``log L`` with L0 = e^l0, A = e^a, C = e^c (C ≥ 0: annealing lowers the loss).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.laws.base import Law

__all__ = ["Curve", "reconstruct", "Tissue", "TISSUE_LAMBDA"]

TISSUE_LAMBDA = 0.999  # Tissue et al. 2024, Sec. 2: decay factor of the annealing momentum


@dataclass(frozen=True)
class Curve:
    """One run's schedule rebuilt per step. ``rows`` are the run's table rows, in step order."""

    rows: np.ndarray  # (m,) indices into the input columns
    steps: np.ndarray  # (m,) sampled steps, increasing
    first: int  # w: first sampled step (end of warm-up)
    eta: np.ndarray  # (T,) η_k for k = origin … last step
    area: np.ndarray  # (T,) S_W + Σ_{τ=w..k} η_τ — the forward area up to and including step k
    warmup_area: float  # S_W
    origin: int  # step of eta[0]: w, or 0 when the warm-up ramp is spelled out

    def index(self, k):
        """Position of step k in ``eta``/``area``."""
        return np.asarray(k) - self.origin


def reconstruct(run: np.ndarray, step: np.ndarray, lr: np.ndarray, with_warmup: bool = False) -> list[Curve]:
    """Split rows by run and rebuild each run's per-step learning rate (see module docstring).

    ``with_warmup`` also spells out the warm-up ramp η_i = η_w·i/w for steps 0…w−1 in ``eta``
    (then S_W = Σ_i η_i = η_w·(w−1)/2, and ``origin`` = 0).
    """
    run = np.asarray(run)
    if run.dtype.kind not in "OUT":
        run = run.astype(str)
    step = np.asarray(step, dtype=float)
    lr = np.asarray(lr, dtype=float)
    codes, names = pd.factorize(run, sort=False)  # hashing, first-seen order: linear in rows
    if run.size > 1 and len(names) == run.size:
        # No run has two rows: a file without a ``run`` column (the loader then names each row) is one
        # curve — a one-point "curve" would carry no schedule at all.
        codes, names = np.zeros(run.size, dtype=np.int64), np.array(["curve"])
    if np.any(step != np.round(step)):
        raise ValueError("step must hold whole training steps")
    # rows by run, each run's rows by step (stable): one sort for all runs
    order = np.argsort(step, kind="stable")
    order = order[np.argsort(codes[order], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    curves = []
    for k, name in enumerate(names):
        rows = order[bounds[k] : bounds[k + 1]]
        s = step[rows].astype(np.int64)
        if np.any(np.diff(s) == 0):
            raise ValueError(f"run {name!r}: step {s[np.flatnonzero(np.diff(s) == 0)[0]]} appears twice")
        ks = np.arange(s[0], s[-1] + 1)
        eta = np.interp(ks, s, lr[rows])
        if with_warmup:
            eta = np.concatenate([eta[0] * np.arange(s[0]) / max(s[0], 1), eta])
            curves.append(Curve(rows, s, int(s[0]), eta, np.cumsum(eta), float(eta[: s[0]].sum()), 0))
        else:
            warmup_area = 0.5 * eta[0] * s[0]
            curves.append(Curve(rows, s, int(s[0]), eta, warmup_area + np.cumsum(eta), float(warmup_area), int(s[0])))
    return curves


def annealing_area(eta: np.ndarray, lam: float = TISSUE_LAMBDA) -> np.ndarray:
    """S2 per step (Tissue et al. 2024, Eq. 1): m_k = λ·m_{k−1} + (η_{k−1} − η_k), S2 = cumsum(m)."""
    # Imported here: scipy.signal (and the scipy.stats it pulls in) adds 0.38 s of CPU to the fit path.
    from scipy.signal import lfilter

    d_eta = np.concatenate([[0.0], -np.diff(eta)])
    m = lfilter([1.0], [1.0, -lam], d_eta)
    return np.cumsum(m)


class Tissue(Law):
    """``L(s) = L0 + A·S1^-α − C·S2`` (Tissue et al. 2024, Eq. 1) with fixed momentum λ."""

    name = "tissue"
    inputs = ("run", "step", "lr")
    param_names = ("log_L0", "log_A", "alpha", "log_C")
    public_names = ("L0", "A", "alpha", "C")
    decay_exponents = ("alpha",)
    formula = "L(s) = L0 + A·S1^-alpha - C·S2,  m_i = lambda·m_{i-1} + (eta_{i-1} - eta_i), S2 = sum m_i"

    def __init__(self, lam: float = TISSUE_LAMBDA):
        if not 0.0 <= lam < 1.0:
            raise ValueError(f"lambda must be in [0, 1), got {lam}")
        self.lam = float(lam)
        if self.lam != TISSUE_LAMBDA:  # a spec registry.get_law rebuilds
            self.name = f"tissue:lam={self.lam}"

    def bounds(self):
        return [(None, None), (None, None), (1e-3, 3.0), (-20.0, None)]

    def grid_axes(self):
        # 3·4·4·4 = 192 starts; S1 is O(1) for η ~ 1e-4..1e-3 over 1e4–1e5 steps, S2 is O(0.1).
        return {
            "log_L0": np.log([1.5, 2.5, 3.5]),
            "log_A": np.log([0.1, 0.3, 1.0, 3.0]),
            "alpha": np.array([0.2, 0.4, 0.6, 0.8]),
            "log_C": np.log([0.1, 0.5, 2.0, 10.0]),
        }

    def prepare(self, inputs):
        curves = reconstruct(inputs["run"], inputs["step"], inputs["lr"])
        n = len(np.asarray(inputs["step"]))
        log_s1, s2 = np.empty(n), np.empty(n)
        for c in curves:
            i = c.index(c.steps)
            log_s1[c.rows] = np.log(c.area[i])
            s2[c.rows] = annealing_area(c.eta, self.lam)[i]
        return {"logS1": log_s1, "S2": s2}

    def log_predict(self, theta, x, grad=False):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the fitter rejects non-finite rows
            return self._log_predict(theta, x, grad)

    def _log_predict(self, theta, x, grad):
        l0, a, alpha, c = (theta[:, i : i + 1] for i in range(4))
        L0, C = np.exp(l0), np.exp(c)
        power = np.exp(a - alpha * x["logS1"])  # A·S1^-α, (S, n)
        drop = C * x["S2"]
        loss = L0 + power - drop
        pred = np.log(loss)  # NaN where the law goes non-positive: the fitter treats it as uphill
        if not grad:
            return pred
        inv = 1.0 / loss
        jac = np.stack(np.broadcast_arrays(L0 * inv, power * inv, -power * x["logS1"] * inv, -drop * inv), axis=-1)
        return pred, jac

    def value_and_vjp(self, theta, x):
        # Σ_i ψ_i·∂pred_i/∂θ without the (S, n, 4) Jacobian: a loss curve logged every step has millions of rows.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            l0, a, alpha, c = (theta[:, i : i + 1] for i in range(4))
            L0, C = np.exp(l0), np.exp(c)
            power = np.exp(a - alpha * x["logS1"])
            drop = C * x["S2"]
            loss = L0 + power - drop
            pred = np.log(loss)
        log_s1 = x["logS1"]

        def vjp(cot):
            with np.errstate(over="ignore", invalid="ignore"):
                u = cot / loss
                up = u * power
                return np.stack([L0[:, 0] * u.sum(axis=1), up.sum(axis=1), -(up @ log_s1 if log_s1.ndim == 1
                                 else (up * log_s1).sum(axis=1)), -(u * drop).sum(axis=1)], axis=1)

        return pred, vjp

    def to_public(self, theta):
        l0, a, alpha, c = (float(v) for v in theta)
        return {"L0": float(np.exp(l0)), "A": float(np.exp(a)), "alpha": alpha, "C": float(np.exp(c))}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["L0"]), np.log(params["A"]), params["alpha"], np.log(params["C"])])
