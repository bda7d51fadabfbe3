"""Data-constrained scaling law (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", Eq. 5).

    L(N, D, U_D) = E + A / N'^α + B / D'^β

Repeated tokens and excess parameters are worth less than fresh ones, decaying with constants R_D*, R_N*:

    D' = U_D + U_D·R_D*·(1 − exp(−R_D/R_D*)),   R_D = D/U_D − 1          (repetitions beyond the first epoch)
    N' = U_N + U_N·R_N*·(1 − exp(−R_N/R_N*)),   R_N = N/U_N − 1,   U_N = min(N, N*(U_D))

N*(U_D) is the Chinchilla compute-optimal model size for U_D tokens under the same (A, B, α, β)
(datablations code, ``D_to_N``):  G = (αA/(βB))^(1/(α+β)),  N*(U) = G·(G·U)^(β/α).

Fitted in log space, ``log L = LSE(a − α·log N', b − β·log D', e)`` with ``A = e^a, B = e^b, E = e^e``,
``R_D* = e^rd, R_N* = e^rn``. All seven constants are fitted jointly — the paper fits (E, A, B, α, β)
on single-epoch runs first, then R_D*, R_N* with those fixed; a joint fit is the same optimum when
the table mixes single- and multi-epoch runs, and R_D* (R_N*) is only identified when some runs
repeat data (have N > N*(U_D)). N*(U_D) depends on (a, b, α, β), so the Jacobian carries the
derivative through U_N on the rows where the min picks N*.

Published fit (Muennighoff et al. 2023, App. A): a = 6.255414, b = 7.3049974, e = 0.6254804,
α = β = 0.3526596, R_D* = 15.387756, R_N* = 5.309743.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms

__all__ = ["DataConstrained", "PUBLISHED", "compute_optimal_params"]

PUBLISHED = {  # Muennighoff et al. 2023, App. A (datablations README, "Parametric fit")
    "A": float(np.exp(6.255414)), "B": float(np.exp(7.3049974)), "E": float(np.exp(0.6254804)),
    "alpha": 0.3526596, "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743,
}


def compute_optimal_params(tokens, A: float, B: float, alpha: float, beta: float):
    """N*(U): the Chinchilla compute-optimal parameter count for ``tokens`` tokens.

    From N* = G·(C/6)^(β/(α+β)) and D* = (C/6)^(α/(α+β))/G (Hoffmann et al. 2022, Eq. 4):
    N*(D) = G·(G·D)^(β/α), G = (αA/(βB))^(1/(α+β)).
    """
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    return G * (G * np.asarray(tokens, dtype=float)) ** (beta / alpha)


def _log_effective(log_u, repeats, log_r_star, grad):
    """log(U·(1 + R*·(1 − e^(−R/R*)))) and, with ``grad``, its derivatives w.r.t. log R* and R.

    ``repeats`` R ≥ 0. Uses expm1 so that R ≪ R* (almost no repetition) keeps full precision.
    """
    r_star = np.exp(log_r_star)
    x = repeats / r_star
    one_minus = -np.expm1(-x)  # 1 − e^(−R/R*)
    factor = 1.0 + r_star * one_minus
    value = log_u + np.log(factor)
    if not grad:
        return value, None, None
    ex = np.exp(-x)
    # d/d log R* of R*(1 − e^(−x)) = R*·(1 − e^(−x) − x·e^(−x)); written as a difference it cancels
    # for small x, so use the series-safe form  −expm1(−x) − x·e^(−x).
    d_log_rstar = r_star * (one_minus - x * ex) / factor
    d_repeats = ex / factor  # d/dR of log(1 + R*(1 − e^(−R/R*)))
    return value, d_log_rstar, d_repeats


class DataConstrained(Law):
    """Muennighoff et al. 2023 (Eq. 5): Chinchilla on effective data D' and effective parameters N'."""

    name = "data_constrained"
    inputs = ("params", "tokens", "unique_tokens")
    param_names = ("a", "b", "e", "alpha", "beta", "log_RD_star", "log_RN_star")
    public_names = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
    decay_exponents = ("alpha", "beta")
    formula = "L = E + A/N'^alpha + B/D'^beta, D' = U_D(1 + R_D*(1 - e^(-R_D/R_D*))), N' likewise"

    def bounds(self):
        # α, β > 0 (N*(U_D) divides by α); R* within [e^-5, e^10] keeps exp(−R/R*) meaningful.
        return [(None, None), (None, None), (None, None), (1e-3, 3.0), (1e-3, 3.0), (-5.0, 10.0), (-5.0, 10.0)]

    def grid_axes(self):
        # Chinchilla's grid, thinned to 3 values per axis, crossed with R* ∈ {e^1.5, e^3.5} ≈ {4.5, 33}:
        # 3^5·2^2 = 972 starts (a third of 3^7, with the same optimum on the recovery data, 3.5× faster).
        return {
            "a": np.array([0.0, 7.5, 15.0]),
            "b": np.array([0.0, 7.5, 15.0]),
            "e": np.array([-0.5, 0.25, 1.0]),
            "alpha": np.array([0.2, 0.5, 1.0]),
            "beta": np.array([0.2, 0.5, 1.0]),
            "log_RD_star": np.array([1.5, 3.5]),
            "log_RN_star": np.array([1.5, 3.5]),
        }

    def prepare(self, inputs):
        N = np.asarray(inputs["params"], float)
        D = np.asarray(inputs["tokens"], float)
        U = np.asarray(inputs["unique_tokens"], float)
        return {
            "logN": np.log(N), "logU": np.log(U),
            "R_D": np.maximum(D / U - 1.0, 0.0),  # Muennighoff et al.: R_D = D/U_D − 1, clipped at 0
        }

    def log_predict(self, theta, x, grad=False):
        a, b, e, alpha, beta, rd, rn = (theta[:, i : i + 1] for i in range(7))  # each (S, 1)
        logN, logU = x["logN"], x["logU"]
        # log N*(U_D) = log G·(α+β)/α + (β/α)·log U_D,  log G = (log α + a − log β − b)/(α+β)
        k = np.log(alpha) + a - np.log(beta) - b
        log_nstar = (k + beta * logU) / alpha
        capped = logN > log_nstar  # U_N = N*(U_D) < N: the excess parameters are discounted
        log_un = np.where(capped, log_nstar, logN)
        repeats_n = np.where(capped, np.expm1(np.minimum(logN - log_un, 700.0)), 0.0)  # R_N = N/U_N − 1
        log_np, dn_rn, dn_rep = _log_effective(log_un, repeats_n, rn, grad)
        log_dp, dd_rd, _ = _log_effective(logU, x["R_D"], rd, grad)

        t_n = a - alpha * log_np
        t_d = b - beta * log_dp
        t_e = np.broadcast_to(e, t_n.shape)
        lse, (w_n, w_d, w_e) = logsumexp_terms([t_n, t_d, t_e])
        if not grad:
            return lse
        # ∂ log N'/∂ log U_N on capped rows: 1 + (∂/∂R_N)·(dR_N/d log U_N) = 1 − dn_rep·N/U_N.
        dlogNp_dlogUn = np.where(capped, 1.0 - dn_rep * (repeats_n + 1.0), 0.0)
        # ∂ log N*(U_D) / ∂(a, b, α, β)
        d_nstar_a = 1.0 / alpha
        d_nstar_alpha = (1.0 - k - beta * logU) / alpha**2
        d_nstar_beta = (-1.0 / beta + logU) / alpha
        g = -alpha * dlogNp_dlogUn * w_n  # ∂LSE/∂ log N*(U_D)
        jac = np.stack([
            w_n + g * d_nstar_a,
            w_d - g * d_nstar_a,
            w_e,
            -w_n * log_np + g * d_nstar_alpha,
            -w_d * log_dp + g * d_nstar_beta,
            -beta * w_d * dd_rd,
            -alpha * w_n * dn_rn,
        ], axis=-1)
        return lse, jac

    def to_public(self, theta):
        a, b, e, alpha, beta, rd, rn = (float(v) for v in theta)
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": alpha, "beta": beta,
                "R_D_star": float(np.exp(rd)), "R_N_star": float(np.exp(rn))}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["A"]), np.log(params["B"]), np.log(params["E"]), params["alpha"], params["beta"],
                         np.log(params["R_D_star"]), np.log(params["R_N_star"])])
