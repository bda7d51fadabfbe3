"""Exponential link from a loss to a downstream error (Gadre et al. 2024, "Language models scale reliably
with over-training and on downstream tasks", Eq. 5).

    Err(L) = ε − k·e^(−γ L)

L is the loss (C4 validation loss in the paper; any column here, read from ``--x``); ε is the error at
L → ∞ (chance), and the error falls towards ε − k·e^(−γL) as the loss drops. With k < 0 the same form
describes an accuracy falling with L. Fitted in log space like every law: the prediction must be > 0.
"""

from __future__ import annotations

import numpy as np

from scalinglab.laws.base import Law


class ExpError(Law):
    name = "exp_error"
    inputs = ("x",)
    param_names = ("epsilon", "k", "gamma")
    public_names = ("epsilon", "k", "gamma")
    formula = "Err = epsilon - k·exp(-gamma·L)"

    def bounds(self):
        return [(None, None), (None, None), (0.0, None)]

    def grid_axes(self):
        return {
            "epsilon": np.array([0.25, 0.5, 0.75, 1.0]),
            "k": np.array([-3.0, -1.0, -0.3, 0.3, 1.0, 3.0, 10.0]),
            "gamma": np.array([0.1, 0.3, 1.0, 3.0]),
        }

    def prepare(self, inputs):
        return {"L": np.asarray(inputs["x"], dtype=float)}

    def log_predict(self, theta, x, grad=False):
        eps, k, gamma = (theta[:, i : i + 1] for i in range(3))
        L = x["L"]
        g = np.exp(-gamma * L)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = eps - k * g
            logy = np.log(y)
            inv = 1.0 / y
        if not grad:
            return logy
        jac = np.stack([np.broadcast_to(inv, logy.shape), -g * inv, k * L * g * inv], axis=-1)
        return logy, jac
