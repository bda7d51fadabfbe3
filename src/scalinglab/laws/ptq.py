"""Post-training-quantization degradation (Kumar et al. 2024, "Scaling Laws for Precision",
arXiv 2411.04330, Eq. 2): the loss a model trained in high precision loses when its weights are
rounded to P_post bits afterwards.

    δ_PTQ(N, D, P_post) = C_T · (D^γ_D / N^γ_N) · e^(−P_post / γ_post)

δ grows with the training tokens D (γ_D > 0: the longer a model is trained, the more rounding hurts
it) and shrinks with the parameters N and the bits P_post. The paper's fitted constants (App. K,
Table 2; models trained in BF16 on Dolma, N = 30M–220M, D = 1.5B–26B tokens, weights quantized after training):

    C_T = 0.0598,  γ_D = 0.5068,  γ_N = 0.3439,  γ_post = 0.5907            (:data:`KUMAR_PTQ`)

beside the loss law's constants of the same table, L = A·N^−α + B·D^−β + E with A = 4.299e3, B = 1.806e4,
α = β = 0.4965, E = 2.7648 (:data:`KUMAR_BASE`). The paper warns that its constants are specific to its setting.

The target is the loss increase ``ptq_delta`` = loss after quantization − float loss of the same run.
Fitted in log space, where the law is linear in its parameters:

    log δ = log C_T + γ_D·log D − γ_N·log N − P_post·κ,     κ = 1/γ_post

so the Huber objective is convex in θ = (log C_T, γ_D, γ_N, κ) and one start finds the optimum.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law

#: Kumar et al. 2024, App. K Table 2: the PTQ term (Eq. 2).
KUMAR_PTQ = {"C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907}
#: The Chinchilla-form part of the same fit (α and β tied in the paper).
KUMAR_BASE = {"A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965, "E": 2.7648}
#: The bit widths the law is defined on here: below 2 bits rounding is no longer a perturbation; 16 bits is
#: the float baseline itself.
BITS_RANGE = (2.0, 16.0)
KAPPA_MIN = 1e-3  # κ = 1/γ_post ≥ 1e-3: γ_post ≤ 1000 bits, i.e. "no dependence on the bits" stays finite


class PTQ(Law):
    name = "ptq"
    inputs = ("params", "tokens", "bits")
    param_names = ("log_C_T", "gamma_D", "gamma_N", "kappa")
    public_names = ("C_T", "gamma_D", "gamma_N", "gamma_post")
    formula = "delta_PTQ = C_T·(D^gamma_D / N^gamma_N)·exp(-P/gamma_post)"
    target = "ptq_delta"

    def bounds(self):
        return [(None, None), (None, None), (None, None), (KAPPA_MIN, None)]

    def grid_axes(self):
        # The objective is convex in θ; a few starts only guard against a poorly scaled first step.
        return {
            "log_C_T": np.array([-6.0, -3.0, 0.0]),
            "gamma_D": np.array([0.0, 0.5]),
            "gamma_N": np.array([0.0, 0.5]),
            "kappa": np.array([0.5, 2.0]),
        }

    def prepare(self, inputs):
        return {"logN": np.log(np.asarray(inputs["params"], float)),
                "logD": np.log(np.asarray(inputs["tokens"], float)),
                "P": np.asarray(inputs["bits"], float)}

    def log_predict(self, theta, x, grad=False):
        log_c, gamma_d, gamma_n, kappa = (theta[:, i : i + 1] for i in range(4))  # each (S, 1)
        logN, logD, P = x["logN"], x["logD"], x["P"]
        pred = log_c + gamma_d * logD - gamma_n * logN - kappa * P
        if not grad:
            return pred
        shape = pred.shape
        jac = np.stack([np.ones(shape), np.broadcast_to(logD, shape), -np.broadcast_to(logN, shape),
                        -np.broadcast_to(P, shape)], axis=-1)  # (S, n, 4)
        return pred, jac

    def to_public(self, theta):
        log_c, gamma_d, gamma_n, kappa = (float(v) for v in theta)
        with np.errstate(over="ignore", divide="ignore"):
            return {"C_T": float(np.exp(log_c)), "gamma_D": gamma_d, "gamma_N": gamma_n,
                    "gamma_post": float(1.0 / kappa) if kappa != 0 else float("inf")}

    def from_public(self, params: Mapping[str, float]):
        with np.errstate(divide="ignore"):
            return np.array([np.log(params["C_T"]), params["gamma_D"], params["gamma_N"], 1.0 / params["gamma_post"]])


def delta_ptq(params: Mapping[str, float], N, D, P) -> np.ndarray:
    """δ_PTQ(N, D, P) of Eq. 2 for the public parameters (C_T, γ_D, γ_N, γ_post); arrays broadcast."""
    N, D, P = (np.asarray(v, dtype=float) for v in (N, D, P))
    return params["C_T"] * D ** params["gamma_D"] / N ** params["gamma_N"] * np.exp(-P / params["gamma_post"])
