"""Broken neural scaling law (Caballero et al. 2023, "Broken Neural Scaling Laws", Eq. 1).

    y = a + b·x^(−c0) · Π_{i=1..n} (1 + (x/d_i)^(1/f_i))^(−c_i·f_i)

A power law with exponent c0 that bends, around each break x ≈ d_i, to exponent c0 + c_i; f_i sets
how sharp the bend is (small f = sharp). ``x`` is any positive run-table column (``flops`` by
default; ``params``, ``tokens``, ``step``...).

Fitted in log space: ``log y = LSE(e, log b − c0·log x − Σ_i c_i·f_i·softplus((log x − log d_i)/f_i))``
with ``a = e^e`` (so the offset stays positive) and ``log b``, ``log d_i``, ``log f_i`` as parameters.
softplus(z) = log(1 + e^z) is evaluated stably, so breaks far outside the data cannot overflow.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms

__all__ = ["BrokenPowerLaw", "softplus"]


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) without overflow."""
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class BrokenPowerLaw(Law):
    """Caballero et al. (2023) with ``n_breaks`` breaks (default 1) on input column ``column``."""

    name = "broken_power_law"
    formula = "y = a + b·x^-c0·Π_i (1 + (x/d_i)^(1/f_i))^(-c_i·f_i)"

    def __init__(self, n_breaks: int = 1, column: str = "flops"):
        if n_breaks < 0:
            raise ValueError(f"n_breaks must be >= 0, got {n_breaks}")
        self.n_breaks = int(n_breaks)
        self.column = column
        if (self.n_breaks, column) != (1, "flops"):  # a spec that registry.get_law rebuilds
            self.name = f"broken_power_law:column={column},n_breaks={self.n_breaks}"
        self.inputs = (column,)
        idx = range(1, self.n_breaks + 1)
        self.param_names = ("e", "log_b", "c0", *(f"{p}{i}" for i in idx for p in ("c", "log_d", "log_f")))
        self.public_names = ("a", "b", "c0", *(f"{p}{i}" for i in idx for p in ("c", "d", "f")))
        self._log_x_range = (0.0, 50.0)  # replaced by the data's range in prepare(), for the init grid

    def bounds(self):
        # Exponents within ±5 and sharpness f ∈ [e^-4, e^3]: outside, the law is a step or a line
        # and the optimiser only wanders.
        out = [(None, None), (None, None), (-5.0, 5.0)]
        lo, hi = self._log_x_range
        span = hi - lo
        for _ in range(self.n_breaks):
            out += [(-5.0, 5.0), (lo - span - 5.0, hi + span + 5.0), (-4.0, 3.0)]
        return out

    def grid_axes(self):
        # Breaks at the 25/50/75 % points of the data's log range; 3·4·3·(4·3·2)^n starts (864 for n = 1).
        lo, hi = self._log_x_range
        axes = {
            "e": np.array([-1.0, 0.0, 1.0]),
            "log_b": np.array([0.0, 5.0, 10.0, 20.0]),
            "c0": np.array([0.05, 0.2, 0.5]),
        }
        for i in range(1, self.n_breaks + 1):
            axes[f"c{i}"] = np.array([-0.3, 0.1, 0.3, 1.0])
            axes[f"log_d{i}"] = lo + (hi - lo) * np.array([0.25, 0.5, 0.75])
            axes[f"log_f{i}"] = np.log(np.array([0.1, 1.0]))
        return axes

    def prepare(self, inputs):
        logx = np.log(np.asarray(inputs[self.column], float))
        if logx.size:
            self._log_x_range = (float(logx.min()), float(logx.max()))
        return {"logx": logx}

    def log_predict(self, theta, x, grad=False):
        logx = x["logx"]
        e, log_b, c0 = (theta[:, i : i + 1] for i in range(3))
        t = log_b - c0 * logx
        breaks = []
        for i in range(self.n_breaks):
            c, log_d, log_f = (theta[:, 3 + 3 * i + j : 4 + 3 * i + j] for j in range(3))
            f = np.exp(log_f)
            z = (logx - log_d) / f
            sp = softplus(z)
            t = t - c * f * sp
            breaks.append((c, f, z, sp))
        t = np.broadcast_to(t, np.broadcast_shapes(t.shape, np.shape(logx)))
        lse, (w_e, w_t) = logsumexp_terms([np.broadcast_to(e, t.shape), t])
        if not grad:
            return lse
        cols = [w_e, w_t, -w_t * np.broadcast_to(logx, lse.shape)]
        for c, f, z, sp in breaks:
            sig = _sigmoid(z)
            cols += [
                -w_t * f * sp,  # ∂t/∂c_i
                w_t * c * sig,  # ∂t/∂log d_i = −c·f·σ(z)·(−1/f)
                -w_t * c * f * (sp - z * sig),  # ∂t/∂log f_i: d/df (f·sp(z)) = sp − z·σ(z), times f
            ]
        return lse, np.stack(np.broadcast_arrays(*cols), axis=-1)

    def to_public(self, theta):
        theta = [float(v) for v in theta]
        out = {"a": float(np.exp(theta[0])), "b": float(np.exp(theta[1])), "c0": theta[2]}
        for i in range(self.n_breaks):
            c, log_d, log_f = theta[3 + 3 * i : 6 + 3 * i]
            out.update({f"c{i + 1}": c, f"d{i + 1}": float(np.exp(log_d)), f"f{i + 1}": float(np.exp(log_f))})
        return out

    def from_public(self, params: Mapping[str, float]):
        out = [np.log(params["a"]), np.log(params["b"]), params["c0"]]
        for i in range(1, self.n_breaks + 1):
            out += [params[f"c{i}"], np.log(params[f"d{i}"]), np.log(params[f"f{i}"])]
        return np.array(out, dtype=float)
