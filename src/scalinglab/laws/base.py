"""The Law protocol: what every scaling law tells the fitter.

A law maps the run table's inputs (e.g. ``params``, ``tokens``) to a predicted **log** loss, for a
whole batch of parameter vectors at once, with its analytic Jacobian. The fitter never knows which
law it fits: it asks for the law's parameter names, bounds and initialisation grid, and calls
:meth:`Law.log_predict` with ``theta`` of shape (S, P) — S starts or S bootstrap replicates — and
inputs of shape (n,) or (S, n).

Parameters live in an *optimisation space* chosen for conditioning (e.g. Chinchilla's
``a = log A``), and :meth:`Law.to_public` maps them to the papers' names (``A``) for reports.
New laws subclass :class:`Law` and add themselves to :data:`scalinglab.laws.LAWS` (see
``laws/registry.py``); nothing in the fitter changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

Inputs = Mapping[str, np.ndarray]


class Law:
    """Base class. Subclasses set the class attributes and implement ``log_predict``."""

    name: str = ""
    #: Canonical run-table columns the law reads (``params``, ``tokens``, ``flops``, ``unique_tokens``...).
    inputs: tuple[str, ...] = ()
    #: Names of the optimisation-space parameters, in theta's column order.
    param_names: tuple[str, ...] = ()
    #: Names of the public (paper) parameters reported in a FitResult.
    public_names: tuple[str, ...] = ()
    #: Public names of the decay exponents: loss falls with scale only when each is >= 0. A fit or a
    #: fit file with a negative one is refused (loss rising with N or D is not this law).
    decay_exponents: tuple[str, ...] = ()
    #: One-line formula for reports.
    formula: str = ""
    #: The run-table column the law predicts (positive; fitted in log space). Hyperparameter laws
    #: predict ``lr``, ``batch_size`` or ``step`` instead of the loss.
    target: str = "loss"

    # -- the fitter's interface -------------------------------------------------------------------
    def bounds(self) -> list[tuple[float | None, float | None]]:
        """(lo, hi) per optimisation parameter; None means unbounded."""
        return [(None, None)] * len(self.param_names)

    def grid_axes(self) -> Mapping[str, Sequence[float]]:
        """Initial values per optimisation parameter; the init grid is their Cartesian product."""
        raise NotImplementedError

    def init_grid(self) -> np.ndarray:
        """(S, P) starts: the Cartesian product of :meth:`grid_axes`, in ``param_names`` order."""
        axes = self.grid_axes()
        return np.array(list(itertools.product(*(axes[p] for p in self.param_names))), dtype=float)

    def prepare(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Turn table columns into the arrays ``log_predict`` uses (logs, cumulative sums...). Called once."""
        return {k: np.asarray(v, dtype=float) for k, v in inputs.items()}

    def log_predict(self, theta: np.ndarray, x: Mapping[str, np.ndarray], grad: bool = False):
        """Predicted log loss, shape (S, n); with ``grad`` also d/dtheta, shape (S, n, P).

        ``theta`` is (S, P); arrays in ``x`` (from :meth:`prepare`) broadcast against (S, n).
        """
        raise NotImplementedError

    def value_and_vjp(self, theta: np.ndarray, x: Mapping[str, np.ndarray]):
        """Predicted log loss (S, n) and a function mapping a cotangent (S, n) to (S, P).

        The fitter only needs Σ_i ψ_i·∂pred_i/∂θ, so laws with structure (Chinchilla) override this to
        avoid materialising the (S, n, P) Jacobian; the default contracts the Jacobian.
        """
        pred, jac = self.log_predict(theta, x, grad=True)
        return pred, lambda cot: np.einsum("sn,snp->sp", cot, jac)

    def subset(self, x: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        """Prepared inputs of the rows ``rows`` only (a fit screens its starts on a subsample of rows).

        Valid when each prepared array holds one value per row; laws with other layouts override it.
        """
        out = {}
        for k, v in x.items():
            if not (isinstance(v, np.ndarray) and v.ndim == 1):
                raise NotImplementedError(f"{self.name}: input '{k}' is not one value per row")
            out[k] = v[rows]
        return out

    def to_public(self, theta: np.ndarray) -> dict[str, float]:
        """Optimisation-space vector (P,) → the paper's parameters."""
        return {n: float(v) for n, v in zip(self.param_names, theta, strict=True)}

    def from_public(self, params: Mapping[str, float]) -> np.ndarray:
        """Inverse of :meth:`to_public`."""
        return np.array([params[n] for n in self.param_names], dtype=float)

    # -- convenience --------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def predict(self, public: Mapping[str, float], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Loss (not log) for public parameters and raw inputs, e.g. ``predict(p, {"params": N, "tokens": D})``."""
        theta = self.from_public(public)[None, :]
        x = self.prepare({k: np.atleast_1d(np.asarray(v)) for k, v in inputs.items()})
        return np.exp(self.log_predict(theta, x)[0])


def logsumexp_terms(terms: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """log Σ_k exp(t_k) and the softmax weights ∂/∂t_k, stable for any magnitudes.

    The Chinchilla-family laws are sums of positive terms ``E + A·N^-α + B·D^-β``; in log space
    each is ``exp(t_k)``, so the log prediction is a log-sum-exp and its gradient is the softmax.
    """
    stacked = np.stack(np.broadcast_arrays(*terms))
    m = stacked.max(axis=0)
    w = np.exp(stacked - m)
    total = w.sum(axis=0)
    lse = m + np.log(total)
    w /= total
    return lse, list(w)
