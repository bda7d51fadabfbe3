"""Chinchilla law (Hoffmann et al. 2022, Eq. 2; fitting procedure of Besiroglu et al. 2024, App. A).

    L(N, D) = E + A·N^-α + B·D^-β

Fitted in log space as ``log L = LSE(a − α·log N, b − β·log D, e)`` with ``A = e^a, B = e^b, E = e^e``,
which keeps every term positive and the problem well scaled. Initialisation grid of Besiroglu et al.:
α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25} — 4,500 starts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms


class Chinchilla(Law):
    name = "chinchilla"
    inputs = ("params", "tokens")
    param_names = ("a", "b", "e", "alpha", "beta")
    public_names = ("E", "A", "B", "alpha", "beta")
    decay_exponents = ("alpha", "beta")
    formula = "L = E + A·N^-alpha + B·D^-beta"

    def grid_axes(self):
        return {
            "alpha": np.arange(0.0, 2.01, 0.5),
            "beta": np.arange(0.0, 2.01, 0.5),
            "e": np.arange(-1.0, 1.01, 0.5),
            "a": np.arange(0.0, 25.1, 5.0),
            "b": np.arange(0.0, 25.1, 5.0),
        }

    def prepare(self, inputs):
        return {"logN": np.log(np.asarray(inputs["params"], float)), "logD": np.log(np.asarray(inputs["tokens"], float))}

    def log_predict(self, theta, x, grad=False):
        a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))  # each (S, 1)
        logN, logD = x["logN"], x["logD"]
        t_n = a - alpha * logN
        t_d = b - beta * logD
        t_e = np.broadcast_to(e, np.broadcast_shapes(t_n.shape, t_d.shape))
        lse, (w_n, w_d, w_e) = logsumexp_terms([t_n, t_d, t_e])
        if not grad:
            return lse
        logN_b = np.broadcast_to(logN, lse.shape)
        logD_b = np.broadcast_to(logD, lse.shape)
        jac = np.stack([w_n, w_d, w_e, -w_n * logN_b, -w_d * logD_b], axis=-1)  # (S, n, 5)
        return lse, jac

    def value_and_vjp(self, theta, x):
        # Direct form L = E + A·N^-α + B·D^-β when no term can overflow (the hot path of the
        # multi-start fit: two exps and one log per point instead of the three-term log-sum-exp).
        a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        logN, logD = x["logN"], x["logD"]
        t_n = a - alpha * logN
        t_d = b - beta * logD
        if max(np.abs(t_n).max(initial=0.0), np.abs(t_d).max(initial=0.0), np.abs(e).max(initial=0.0)) > 600.0:
            return super().value_and_vjp(theta, x)
        term_n = np.exp(t_n)
        term_d = np.exp(t_d)
        total = term_n + term_d + np.exp(e)
        pred = np.log(total)
        inv = 1.0 / total

        def vjp(cot):
            c = cot * inv  # ∂log L/∂term = 1/L
            cn = c * term_n  # (S, n)
            cd = c * term_d
            g_e = c.sum(axis=1) * np.exp(e[:, 0])
            # Shared inputs (n,) contract with BLAS; per-row inputs (S, n) elementwise.
            g_alpha = -(cn @ logN if logN.ndim == 1 else (cn * logN).sum(axis=1))
            g_beta = -(cd @ logD if logD.ndim == 1 else (cd * logD).sum(axis=1))
            return np.stack([cn.sum(axis=1), cd.sum(axis=1), g_e, g_alpha, g_beta], axis=1)

        return pred, vjp

    def to_public(self, theta):
        a, b, e, alpha, beta = (float(v) for v in theta)
        with np.errstate(over="ignore"):  # a wandering bootstrap refit may reach log B > 709: B = inf, kept
            return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": alpha, "beta": beta}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["A"]), np.log(params["B"]), np.log(params["E"]), params["alpha"], params["beta"]])


def compute_optimal(params: Mapping[str, float], flops: np.ndarray | float, flops_per_param_token: float = 6.0):
    """N*(C), D*(C) minimising L subject to C = 6·N·D (Hoffmann et al. 2022, Eq. 4).

    G = (αA / (βB))^(1/(α+β)),  N* = G·(C/6)^(β/(α+β)),  D* = (C/6)^(α/(α+β)) / G.
    """
    A, B, alpha, beta = params["A"], params["B"], params["alpha"], params["beta"]
    c = np.asarray(flops, dtype=float) / flops_per_param_token
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n_opt = G * c ** (beta / (alpha + beta))
    d_opt = c ** (alpha / (alpha + beta)) / G
    return n_opt, d_opt
