"""Sigmoid link from a loss to an accuracy (Bhagia et al. 2024, "Establishing Task Scaling Laws via
Compute-Efficient Model Ladders", step 2, Eq. 2).

    Acc(L) = a / (1 + e^(−k (L − L0))) + b

L is the task loss (bits per byte of the correct continuation in the paper; any loss column here, read
from ``--x``). With k > 0 and a < 0 the accuracy falls from b (L → −∞) to a + b (L → +∞, the chance
level); a > 0 gives a rising curve (an error rate). The paper fits it to every intermediate checkpoint
of the ladder, not only final ones. Here, like every law, it is fitted in log space (Huber on
log Acc residuals), so the predicted value must stay positive.
"""

from __future__ import annotations

import numpy as np

from scalinglab.laws.base import Law


def sigma_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ(z) = 1/(1 + e^−z) and σ(1 − σ), via tanh so that no |z| overflows."""
    t = np.tanh(0.5 * z)
    return 0.5 * (1.0 + t), 0.25 * (1.0 - t * t)


class Sigmoid(Law):
    name = "sigmoid"
    inputs = ("x",)
    param_names = ("a", "k", "L0", "b")
    public_names = ("a", "k", "L0", "b")
    formula = "Acc = a / (1 + exp(-k·(L - L0))) + b"

    def bounds(self):
        return [(None, None), (0.0, None), (None, None), (None, None)]

    def grid_axes(self):
        # 96 starts: on the OLMo ladder's 8 tasks they reach the same optimum as an 840-start grid
        # (a ∈ ±{0.1, 0.4, 0.8}, k ∈ {0.3…30}, L0 ∈ {0…5}, b ∈ {0.1…1}) in a quarter of the time.
        return {
            "a": np.array([-0.8, -0.4, 0.4, 0.8]),
            "k": np.array([1.0, 4.0, 16.0]),
            "L0": np.array([0.25, 0.75, 1.5, 3.0]),
            "b": np.array([0.5, 1.0]),
        }

    def prepare(self, inputs):
        return {"L": np.asarray(inputs["x"], dtype=float)}

    def log_predict(self, theta, x, grad=False):
        a, k, L0, b = (theta[:, i : i + 1] for i in range(4))  # each (S, 1)
        u = x["L"] - L0
        s, ds = sigma_terms(k * u)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = a * s + b
            logy = np.log(y)  # NaN where y <= 0: the objective treats that start as uphill
            inv = 1.0 / y
        if not grad:
            return logy
        with np.errstate(invalid="ignore"):
            jac = np.stack([s * inv, a * ds * u * inv, -a * ds * k * inv, np.broadcast_to(inv, logy.shape)], axis=-1)
        return logy, jac
