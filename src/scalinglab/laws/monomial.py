"""Pure power laws of run-table columns, y = c·Π_k x_k^(e_k): the shape of every hyperparameter law.

The optimal learning rate η*(N, D) = c·N^a·D^b and optimal batch B*(D) = c·D^b of DeepSeek LLM
(Bi et al. 2024, Eq. 1) and "Predictable Scale" (Li et al. 2025, Eq. 2–3), and the critical batch
size B_crit = c·X^a of Zhang et al. (2024), are all monomials: in log space a plane,

    log y = log c + Σ_k e_k·log x_k,

so the Jacobian is the design matrix itself, and every start of the fitter converges to the one
optimum. The fitted quantity is a run-table column other than ``loss`` (``lr``, ``batch_size``),
named by :attr:`Monomial.target`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law

__all__ = ["Monomial"]


class Monomial(Law):
    """``target = c·Π_k column_k^(exponent_k)``; subclasses fix columns, exponent names and target."""

    columns: tuple[str, ...] = ()
    exponents: tuple[str, ...] = ()  # public (and optimisation) name of each column's exponent

    def __init__(self):
        self.inputs = tuple(self.columns)
        self.param_names = ("log_c", *self.exponents)
        self.public_names = ("c", *self.exponents)

    def grid_axes(self):
        # The problem is linear least squares in log space (convex whatever the Huber δ), so a few starts
        # suffice; the spread guards only against the line search's first step from a far start.
        axes = {"log_c": np.linspace(-30.0, 30.0, 7)}
        axes.update({e: np.array([-1.0, -0.3, 0.3, 1.0]) for e in self.exponents})
        return axes

    def prepare(self, inputs):
        return {f"log_{c}": np.log(np.asarray(inputs[c], float)) for c in self.columns}

    def log_predict(self, theta, x, grad=False):
        logs = [x[f"log_{c}"] for c in self.columns]
        pred = theta[:, 0:1] + sum(theta[:, k + 1 : k + 2] * lx for k, lx in enumerate(logs))
        pred = np.broadcast_to(pred, np.broadcast_shapes(pred.shape, *(np.shape(lx) for lx in logs)))
        if not grad:
            return pred
        cols = [np.ones(pred.shape), *(np.broadcast_to(lx, pred.shape) for lx in logs)]
        return pred, np.stack(cols, axis=-1)

    def to_public(self, theta):
        theta = [float(v) for v in theta]
        return {"c": float(np.exp(theta[0])), **dict(zip(self.exponents, theta[1:], strict=True))}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["c"]), *(params[e] for e in self.exponents)], dtype=float)
