"""Over-training law (Gadre et al. 2024, "Language models scale reliably with over-training and on
downstream tasks", Eq. 4): loss as a function of compute C and the token multiplier M = D/N.

    L(C, M) = E + (a·M^η + b·M^(−η))·C^(−η),   C = 6·N·D,  M = D / N

It is the Chinchilla form with one exponent for N and D (α = β), rewritten in (C, M) so that a ladder
sweeping tokens per parameter extrapolates along M. Fitted in log space as
``log L = LSE(log a + η·log M − η·log C, log b − η·log M − η·log C, log E)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms
from scalinglab.runs.schema import FLOPS_PER_PARAM_TOKEN


class Overtraining(Law):
    name = "overtraining"
    inputs = ("params", "tokens")
    param_names = ("log_a", "log_b", "log_E", "eta")
    public_names = ("E", "a", "b", "eta")
    formula = "L = E + (a·M^eta + b·M^-eta)·C^-eta, M = D/N, C = 6ND"

    def bounds(self):
        return [(None, None), (None, None), (None, None), (0.0, None)]

    def grid_axes(self):
        return {
            "log_a": np.arange(0.0, 20.1, 5.0),
            "log_b": np.arange(0.0, 20.1, 5.0),
            "log_E": np.arange(-1.0, 1.01, 0.5),
            "eta": np.array([0.05, 0.1, 0.2, 0.3, 0.5]),
        }

    def prepare(self, inputs):
        N = np.asarray(inputs["params"], dtype=float)
        D = np.asarray(inputs["tokens"], dtype=float)
        return {"logM": np.log(D / N), "logC": np.log(FLOPS_PER_PARAM_TOKEN * N * D)}

    def log_predict(self, theta, x, grad=False):
        log_a, log_b, log_E, eta = (theta[:, i : i + 1] for i in range(4))
        logM, logC = x["logM"], x["logC"]
        t_a = log_a + eta * (logM - logC)
        t_b = log_b - eta * (logM + logC)
        t_e = np.broadcast_to(log_E, np.broadcast_shapes(t_a.shape, t_b.shape))
        lse, (w_a, w_b, w_e) = logsumexp_terms([t_a, t_b, t_e])
        if not grad:
            return lse
        d_eta = w_a * (logM - logC) - w_b * (logM + logC)
        return lse, np.stack([w_a, w_b, w_e, d_eta], axis=-1)

    def to_public(self, theta):
        log_a, log_b, log_E, eta = (float(v) for v in theta)
        with np.errstate(over="ignore"):
            return {"E": float(np.exp(log_E)), "a": float(np.exp(log_a)), "b": float(np.exp(log_b)), "eta": eta}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["a"]), np.log(params["b"]), np.log(params["E"]), params["eta"]])
