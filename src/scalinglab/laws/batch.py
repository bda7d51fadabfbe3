"""Batch size against training steps: the steps/examples trade-off and the critical batch size.

McCandlish et al. (2018, "An Empirical Model of Large-Batch Training", Eq. 2.11 and §2.3): to reach a
given loss, the optimizer steps S and examples E = B·S used at batch size B trade off as
(S/S_min − 1)(E/E_min − 1) = 1, i.e.

    S(B) = S_min·(1 + B_crit/B),        B_crit = E_min/S_min,

so below B_crit doubling the batch halves the steps (perfect scaling), above it the steps stop
falling and the extra examples are wasted. ``batch_tradeoff`` fits this with S_min and B_crit as
power laws of X = N (``params``, default) or D (``tokens``), so one fit spans a whole ladder:

    S_min = S0·X^alpha_S,    B_crit = B0·X^alpha_B,
    log S = LSE(t, t + log B_crit − log B),   t = log S_min

(``column=none`` fits one size: S_min and B_crit are constants). The fitted column is ``step``
(alias ``steps``): the steps each run took to reach the target loss.

``critical_batch`` is the plain power law B_crit = c·X^a of Zhang et al. (2024, "How Does Critical
Batch Size Scale in Pre-training?"), who find it grows with data size D more than with model size N;
fit it on X = N and on X = D and compare (:func:`scalinglab.planning.hparams.compare_critical_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.laws.base import Law, logsumexp_terms
from scalinglab.laws.monomial import Monomial

__all__ = ["BatchTradeoff", "CriticalBatch", "SCALE_COLUMNS"]

SCALE_COLUMNS = ("params", "tokens")


class BatchTradeoff(Law):
    """``S = S_min·(1 + B_crit/B)`` with S_min, B_crit power laws of ``column`` (McCandlish et al. 2018)."""

    target = "step"

    def __init__(self, column: str = "params"):
        if column not in (*SCALE_COLUMNS, "none"):
            raise ValueError(f"column must be one of params, tokens, none; got {column!r}")
        self.column = column
        self.name = "batch_tradeoff" if column == "params" else f"batch_tradeoff:column={column}"
        if column == "none":
            self.inputs = ("batch_size",)
            self.param_names = ("log_S_min", "log_B_crit")
            self.public_names = ("S_min", "B_crit")
            self.formula = "S = S_min·(1 + B_crit/B)"
        else:
            self.inputs = (column, "batch_size")
            self.param_names = ("log_S0", "alpha_S", "log_B0", "alpha_B")
            self.public_names = ("S0", "alpha_S", "B0", "alpha_B")
            x = "N" if column == "params" else "D"
            self.formula = f"S = S_min·(1 + B_crit/B), S_min = S0·{x}^alpha_S, B_crit = B0·{x}^alpha_B"

    def grid_axes(self):
        # Steps of real runs span 1e1–1e6 and batch sizes 1e0–1e7; exponents are O(1) or smaller.
        # 5·5 = 25 starts for one size, 4·4·5·4 = 320 for the power-law form.
        if self.column == "none":
            return {"log_S_min": np.linspace(0.0, 16.0, 5), "log_B_crit": np.linspace(-2.0, 16.0, 5)}
        return {"log_S0": np.array([0.0, 5.0, 10.0, 20.0]), "alpha_S": np.array([-1.0, -0.5, -0.2, 0.0]),
                "log_B0": np.array([-10.0, -5.0, 0.0, 5.0, 10.0]), "alpha_B": np.array([-0.5, 0.0, 0.5, 1.0])}

    def prepare(self, inputs):
        out = {"logB": np.log(np.asarray(inputs["batch_size"], float))}
        if self.column != "none":
            out["logX"] = np.log(np.asarray(inputs[self.column], float))
        return out

    def log_scales(self, theta: np.ndarray, x: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(log S_min, log B_crit), each (S, n) for theta (S, P) and ``x`` from :meth:`prepare` (logX only)."""
        if self.column == "none":
            shape = (theta.shape[0], 1)
            return theta[:, 0:1] + np.zeros(shape), theta[:, 1:2] + np.zeros(shape)
        lx = x["logX"]
        return theta[:, 0:1] + theta[:, 1:2] * lx, theta[:, 2:3] + theta[:, 3:4] * lx

    def log_predict(self, theta, x, grad=False):
        log_s, log_bc = self.log_scales(theta, x)
        # log S = log S_min + log(1 + B_crit/B) = LSE(0, log B_crit − log B) + log S_min
        u = log_bc - x["logB"]
        lse, (_, w) = logsumexp_terms([np.zeros(np.broadcast_shapes(u.shape, log_s.shape)), u])
        pred = log_s + lse
        if not grad:
            return pred
        one = np.ones(pred.shape)
        if self.column == "none":
            return pred, np.stack([one, w], axis=-1)
        lx = np.broadcast_to(x["logX"], pred.shape)
        return pred, np.stack([one, lx, w, w * lx], axis=-1)

    def to_public(self, theta):
        theta = [float(v) for v in theta]
        if self.column == "none":
            return {"S_min": float(np.exp(theta[0])), "B_crit": float(np.exp(theta[1]))}
        return {"S0": float(np.exp(theta[0])), "alpha_S": theta[1], "B0": float(np.exp(theta[2])), "alpha_B": theta[3]}

    def from_public(self, params: Mapping[str, float]):
        if self.column == "none":
            return np.log([params["S_min"], params["B_crit"]])
        return np.array([np.log(params["S0"]), params["alpha_S"], np.log(params["B0"]), params["alpha_B"]])


class CriticalBatch(Monomial):
    """``B_crit = c·X^a`` for X = D (``tokens``, default) or N (``params``) (Zhang et al. 2024)."""

    target = "batch_size"
    exponents = ("a",)

    def __init__(self, column: str = "tokens"):
        if column not in SCALE_COLUMNS:
            raise ValueError(f"column must be params or tokens; got {column!r}")
        self.column = column
        self.columns = (column,)
        self.name = "critical_batch" if column == "tokens" else f"critical_batch:column={column}"
        self.formula = f"B_crit = c·{'D' if column == 'tokens' else 'N'}^a"
        super().__init__()
