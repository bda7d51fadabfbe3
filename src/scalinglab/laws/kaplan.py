"""Kaplan et al. (2020) laws: the joint (N, D) law and the compute-only power law with an offset.

Joint law (Kaplan et al. 2020, Eq. 1.5 / 4.1)::

    L(N, D) = [(N_c / N)^(α_N/α_D) + D_c / D]^α_D

In log space ``log L = α_D · LSE(r·(n_c − log N), d_c − log D)`` with ``r = α_N/α_D``,
``n_c = log N_c``, ``d_c = log D_c``, so both terms stay positive and the scale constants
(N_c ≈ 8.8e13, D_c ≈ 5.4e13 in the paper) are fitted as logs of order 30.

Compute-only law with an irreducible offset (Kaplan et al. 2020, Eq. 1.4 with the offset of
Henighan et al. 2020, Eq. 1.1)::

    L(C) = E + A·C^-α

fitted as ``log L = LSE(a − α·log C, e)`` with ``A = e^a, E = e^e`` (the Chinchilla recipe, one input).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms

__all__ = ["Kaplan", "ComputePowerLaw"]


class Kaplan(Law):
    """``L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D`` (Kaplan et al. 2020, Eq. 1.5)."""

    name = "kaplan"
    inputs = ("params", "tokens")
    param_names = ("log_Nc", "log_Dc", "alpha_N", "alpha_D")
    public_names = ("N_c", "D_c", "alpha_N", "alpha_D")
    decay_exponents = ("alpha_N", "alpha_D")
    formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"

    def bounds(self):
        # The exponents must stay positive: α_D divides, and L → ∞ as α_D → 0 is no minimum.
        return [(None, None), (None, None), (1e-4, 5.0), (1e-4, 5.0)]

    def grid_axes(self):
        # Paper: α_N = 0.076, α_D = 0.095, log N_c = 32.1, log D_c = 31.6. 5·5·4·4 = 400 starts.
        return {
            "log_Nc": np.arange(10.0, 50.1, 10.0),
            "log_Dc": np.arange(10.0, 50.1, 10.0),
            "alpha_N": np.array([0.03, 0.1, 0.3, 1.0]),
            "alpha_D": np.array([0.03, 0.1, 0.3, 1.0]),
        }

    def prepare(self, inputs):
        return {"logN": np.log(np.asarray(inputs["params"], float)), "logD": np.log(np.asarray(inputs["tokens"], float))}

    def log_predict(self, theta, x, grad=False):
        n_c, d_c, alpha_n, alpha_d = (theta[:, i : i + 1] for i in range(4))  # each (S, 1)
        r = alpha_n / alpha_d
        u = n_c - x["logN"]  # log(N_c/N)
        t1 = r * u
        t2 = d_c - x["logD"]  # log(D_c/D)
        lse, (w1, w2) = logsumexp_terms([t1, t2])
        pred = alpha_d * lse
        if not grad:
            return pred
        u = np.broadcast_to(u, pred.shape)
        jac = np.stack([
            alpha_n * w1,  # ∂/∂n_c = α_D·w1·r
            alpha_d * w2,  # ∂/∂d_c
            w1 * u,  # ∂/∂α_N = α_D·w1·u/α_D
            lse - w1 * r * u,  # ∂/∂α_D = LSE + α_D·w1·u·(−α_N/α_D²)
        ], axis=-1)
        return pred, jac

    def to_public(self, theta):
        n_c, d_c, alpha_n, alpha_d = (float(v) for v in theta)
        return {"N_c": float(np.exp(n_c)), "D_c": float(np.exp(d_c)), "alpha_N": alpha_n, "alpha_D": alpha_d}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["N_c"]), np.log(params["D_c"]), params["alpha_N"], params["alpha_D"]])


class ComputePowerLaw(Law):
    """``L(C) = E + A·C^-α`` (Kaplan et al. 2020, Eq. 1.4; offset E as in Henighan et al. 2020)."""

    name = "compute"
    inputs = ("flops",)
    param_names = ("a", "e", "alpha")
    public_names = ("E", "A", "alpha")
    decay_exponents = ("alpha",)
    formula = "L = E + A·C^-alpha"

    def bounds(self):
        return [(None, None), (None, None), (0.0, None)]

    def grid_axes(self):
        # log C of real runs spans ~35–60, and a ≈ α·log C at the knee: a reaches 30 for α = 0.6.
        # 13·5·6 = 390 starts.
        return {
            "a": np.arange(0.0, 30.1, 2.5),
            "e": np.arange(-1.0, 1.01, 0.5),
            "alpha": np.array([0.025, 0.05, 0.1, 0.2, 0.4, 0.8]),
        }

    def prepare(self, inputs):
        return {"logC": np.log(np.asarray(inputs["flops"], float))}

    def log_predict(self, theta, x, grad=False):
        a, e, alpha = (theta[:, i : i + 1] for i in range(3))
        logC = x["logC"]
        t_c = a - alpha * logC
        t_e = np.broadcast_to(e, t_c.shape)
        lse, (w_c, w_e) = logsumexp_terms([t_c, t_e])
        if not grad:
            return lse
        jac = np.stack([w_c, w_e, -w_c * np.broadcast_to(logC, lse.shape)], axis=-1)
        return lse, jac

    def to_public(self, theta):
        a, e, alpha = (float(v) for v in theta)
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": alpha}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["A"]), np.log(params["E"]), params["alpha"]])
