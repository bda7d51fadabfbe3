"""Loss-to-loss law (Brandfonbrener et al. 2024, "Loss-to-Loss Prediction: Scaling Laws for All
Datasets", Eq. 3): the loss on distribution B as a shifted power law of the loss on distribution A.

    L_B = K·(L_A − E_A)^κ + E_B

E_A and E_B are the irreducible losses of the two distributions; the models are paired by training
compute (train-to-train) or are the same model (train-to-test). L_A is read from ``--x``. Fitted in log
space as ``log L_B = LSE(log K + κ·log(L_A − E_A), log E_B)``; E_A must stay below every L_A.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms


class LossToLoss(Law):
    name = "loss_to_loss"
    inputs = ("x",)
    param_names = ("log_K", "kappa", "E_A", "log_E_B")
    public_names = ("K", "kappa", "E_A", "E_B")
    formula = "L_B = K·(L_A - E_A)^kappa + E_B"

    def bounds(self):
        return [(None, None), (0.0, None), (0.0, None), (None, None)]

    def grid_axes(self):
        return {
            "log_K": np.arange(-2.0, 2.01, 1.0),
            "kappa": np.array([0.5, 1.0, 1.5, 2.0]),
            "E_A": np.array([0.0, 0.5, 1.0, 1.5]),
            "log_E_B": np.arange(-1.0, 1.01, 0.5),
        }

    def prepare(self, inputs):
        return {"L_A": np.asarray(inputs["x"], dtype=float)}

    def log_predict(self, theta, x, grad=False):
        log_K, kappa, E_A, log_E_B = (theta[:, i : i + 1] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = x["L_A"] - E_A
            log_gap = np.log(gap)  # NaN where E_A >= L_A: outside the law's domain
        t_1 = log_K + kappa * log_gap
        t_2 = np.broadcast_to(log_E_B, t_1.shape)
        lse, (w_1, w_2) = logsumexp_terms([t_1, t_2])
        if not grad:
            return lse
        with np.errstate(invalid="ignore", divide="ignore"):
            jac = np.stack([w_1, w_1 * log_gap, -w_1 * kappa / gap, w_2], axis=-1)
        return lse, jac

    def to_public(self, theta):
        log_K, kappa, E_A, log_E_B = (float(v) for v in theta)
        with np.errstate(over="ignore"):
            return {"K": float(np.exp(log_K)), "kappa": kappa, "E_A": E_A, "E_B": float(np.exp(log_E_B))}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["K"]), params["kappa"], params["E_A"], np.log(params["E_B"])])
