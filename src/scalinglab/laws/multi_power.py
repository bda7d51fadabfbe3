"""Multi-power law for loss curves across learning-rate schedules (Luo et al. 2025, Eq. 5).

    L(t) = L0 + A·(S1(t) + S_W)^-α − LD(t)
    LD(t) = B·Σ_{k=1..t} (η_{k−1} − η_k)·G(η_k^-γ·S_k(t)),   S_k(t) = Σ_{τ=k..t} η_τ
    G(x) = 1 − (C·x + 1)^-β

Step 0 is the end of warm-up (η_0 = the first sampled learning rate), S_W the warm-up area; the
schedule between samples is rebuilt per step by :func:`scalinglab.laws.lr_schedule.reconstruct`.

**Compressing Σ_k.** Evaluated literally, LD costs one G per (sampled point, earlier step) pair —
20 M pairs for one 72k-step cosine curve, times every start of a batched fit. ``prepare`` groups the
steps before each point t into cells whose width grows geometrically with the distance t − k (width
≤ ``ratio``·distance, single steps next to t), so G's argument varies little inside a cell. Each
cell becomes one pair: its total decrease Σ(η_{k−1} − η_k) (exact, by telescoping) evaluated at the
decrease-weighted mean step k̄, with η and S_k(t) interpolated there. Decreases and increases are
cells of their own, so non-monotone schedules are summed correctly. Inside a learning-rate drop
(a logged step decay, rebuilt as a short ramp) η_k^-γ changes by a large factor from step to step,
so cells are also split wherever the drop has moved log η by another ``LOG_ETA_STEP``
(:func:`drop_breaks`); without that split the error at the bundled two-stage drops was 1.6e-3–2.3e-3
and shrank only in proportion to the cell width. Pairs are ~40 per point. Measured against the
per-step sum on every bundled curve with the published constants of its model
(``benchmarks/multi_power_sum.py``): LD is off by at most 2.1e-5 in loss units (bound tested: < 5e-5),
far below the noise of a logged loss.
Steps where η does not change contribute nothing and produce no pair (a constant schedule has none).

Parameters are fitted as logs of the positive scale constants: L0 = e^l0, A = e^a, B = e^b, C = e^c.
Published fits on the bundled curves (repository ``src/config.py``, [L0, A, α, B, C, β, γ]):
25M: [3.040, 0.525, 0.508, 363.8, 2.066, 0.583, 0.641]; 100M: [2.651, 0.601, 0.453, 437.9, 2.132,
0.598, 0.655]; 400M: [2.375, 0.654, 0.429, 523.4, 2.025, 0.594, 0.635] — their code also counts the
warm-up's increases inside LD, which shifts their L0 by about −B·η_peak relative to Eq. 5;
``MultiPower(warmup_in_loss_drop=True)`` reproduces that convention.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse

from scalinglab.laws.base import Law
from scalinglab.laws.lr_schedule import Curve, reconstruct

__all__ = ["MultiPower", "cell_edges", "loss_drop_pairs"]

CELL_RATIO = 0.25  # cell width / distance to t: trades pairs per point (~log(T)/ratio) for accuracy
ETA_FLOOR = 1e-10  # relative to the peak η: a schedule decayed to 0 gives G = 1, not 0·∞
LOG_ETA_STEP = 0.1  # inside a drop, a cell spans at most this much of log η
FAST_CHANGE = 1e-3  # |Δ log η| per step above which a step belongs to a drop (cosine/WSD decays: < 6e-4)


def cell_edges(max_dist: int, ratio: float = CELL_RATIO) -> np.ndarray:
    """Distances b_0 = 0 < b_1 < … ≥ max_dist with b_{j+1} − b_j = max(1, ⌊ratio·b_j⌋)."""
    edges = [0]
    while edges[-1] < max_dist:
        edges.append(edges[-1] + max(1, int(ratio * edges[-1])))
    return np.array(edges, dtype=np.int64)


def drop_breaks(eta: np.ndarray, log_step: float = LOG_ETA_STEP, fast: float = FAST_CHANGE) -> np.ndarray:
    """Positions where a cell must start so that no cell spans more than ``log_step`` of log η inside a drop.

    A drop is a run of steps whose η changes by more than ``fast`` (relative) per step — a step
    decay logged every ~128 steps is rebuilt as a short linear ramp of such steps. Across a drop
    η_k^-γ, hence G, changes by a large factor from one step to the next, and one evaluation per
    cell at the mean step misses the sum by O(1) of the drop's share; splitting the cells at every
    ``log_step`` of |Δ log η| accumulated over the drop's steps bounds that error at any distance.
    """
    log_eta = np.log(np.maximum(eta, ETA_FLOOR * max(float(np.abs(eta).max(initial=0.0)), 1e-300)))
    change = np.abs(np.diff(log_eta, prepend=log_eta[:1]))  # |Δ log η| entering position k
    fast_change = np.where(change > fast, change, 0.0)
    level = np.floor(np.cumsum(fast_change) / log_step)
    starts = np.flatnonzero(np.diff(level, prepend=0.0) > 0)  # a new level begins here
    return starts[starts >= 1].astype(np.int64)


def loss_drop_pairs(curve: Curve, ratio: float = CELL_RATIO, log_step: float = LOG_ETA_STEP):
    """Compressed LD pairs of one curve: (point position, Δη of the cell, η at k̄, S_k̄(t)).

    Point positions index ``curve.steps``. For point t the cells cover k ∈ [w+1, t]; cell j holds
    the steps at distance t − k ∈ [b_j, b_{j+1}), and cells are further split where a drop in η
    begins a new level (:func:`drop_breaks`).
    """
    eta = curve.eta
    d_eta = np.concatenate([[0.0], eta[:-1] - eta[1:]])  # η_{k−1} − η_k at position k (0 at k = w)
    pos = np.arange(eta.size, dtype=float)
    tiny = 1e-12 * max(float(np.abs(eta).max(initial=0.0)), 1e-300)
    t_pos = curve.index(curve.steps)  # (m,)
    edges = cell_edges(int(t_pos.max(initial=0)), ratio)
    # first position of every cell: the distance cells, clipped to k ≥ w+1, and the drop breaks ≤ t
    starts = np.maximum(t_pos[:, None] - edges[None, 1:] + 1, 1)  # (m, J)
    breaks = drop_breaks(eta, log_step)
    if breaks.size:
        starts = np.concatenate([starts, np.minimum(breaks[None, :], t_pos[:, None] + 1)], axis=1)
    lo = np.sort(starts, axis=1)
    hi = np.concatenate([lo[:, 1:] - 1, t_pos[:, None]], axis=1)  # last position of each cell
    valid = hi >= lo
    out = []
    for part in (np.maximum(d_eta, 0.0), np.minimum(d_eta, 0.0)):  # decreases, then increases
        if not np.any(np.abs(part) > tiny):
            continue
        q = np.concatenate([[0.0], np.cumsum(part)])  # q[k+1] = Σ_{≤k}
        qk = np.concatenate([[0.0], np.cumsum(part * pos)])
        h, low = np.where(valid, hi, 0), np.where(valid, lo, 0)
        w = q[h + 1] - q[low]
        keep = valid & (np.abs(w) > tiny)
        w = w[keep]
        k_bar = (qk[h + 1] - qk[low])[keep] / w
        k_bar = np.clip(k_bar, low[keep], h[keep])  # rounding can push the mean a hair outside the cell
        point = np.broadcast_to(np.arange(t_pos.size)[:, None], keep.shape)[keep]
        eta_k = np.interp(k_bar, pos, eta)
        # S_k̄(t) = Σ_{τ=k̄..t} η_τ = area(t) − area(k̄ − 1), the area interpolated between steps
        s_k = curve.area[t_pos[point]] - np.interp(k_bar - 1.0, pos, curve.area)
        out.append((point, w, eta_k, s_k))
    if not out:
        return (np.zeros(0, np.int64),) + (np.zeros(0),) * 3
    return tuple(np.concatenate(v) for v in zip(*out, strict=True))


class MultiPower(Law):
    """Luo et al. (2025) multi-power law, Eq. 5, with compressed loss-drop sums."""

    name = "multi_power"
    inputs = ("run", "step", "lr")
    param_names = ("log_L0", "log_A", "alpha", "log_B", "log_C", "beta", "gamma")
    public_names = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
    decay_exponents = ("alpha",)
    formula = ("L(t) = L0 + A·(S1+S_W)^-alpha - B·sum_k (eta_{k-1}-eta_k)·G(eta_k^-gamma·S_k(t)), "
               "G(x) = 1 - (C·x+1)^-beta")

    def __init__(self, ratio: float = CELL_RATIO, warmup_in_loss_drop: bool = False):
        """``warmup_in_loss_drop`` follows the authors' code instead of the paper's Eq. 5: the warm-up
        ramp's increases enter LD too (negative drops that saturate at ≈ −B·η_peak), so fitted L0
        comes out about B·η_peak lower — use it to compare with their published constants.
        """
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)
        self.warmup_in_loss_drop = bool(warmup_in_loss_drop)
        if (self.ratio, self.warmup_in_loss_drop) != (CELL_RATIO, False):  # a spec registry.get_law rebuilds
            self.name = f"multi_power:ratio={self.ratio},warmup_in_loss_drop={self.warmup_in_loss_drop}"

    def bounds(self):
        return [(None, None), (None, None), (1e-3, 3.0), (None, 15.0), (-10.0, 10.0), (1e-3, 5.0), (0.0, 3.0)]

    def grid_axes(self):
        # The authors' recipe (repository src/fitting.py): grid the power-law part (L0, A, α, B) and start
        # the shape of G from one point (C = 1, β = γ = 0.5). 3·2·2·2 = 24 starts; crossing C, β, γ
        # with two values each (192 starts) reached the same optima on every bundled model, 8× slower.
        return {
            "log_L0": np.log([1.5, 2.5, 3.5]),
            "log_A": np.log([0.3, 1.0]),
            "alpha": np.array([0.3, 0.6]),
            "log_B": np.log([100.0, 1000.0]),
            "log_C": np.array([0.0]),
            "beta": np.array([0.5]),
            "gamma": np.array([0.5]),
        }

    def prepare(self, inputs):
        curves = reconstruct(inputs["run"], inputs["step"], inputs["lr"], with_warmup=self.warmup_in_loss_drop)
        n = len(np.asarray(inputs["step"]))
        log_x = np.empty(n)
        points, ws, etas, ss = [], [], [], []
        for c in curves:
            log_x[c.rows] = np.log(c.area[c.index(c.steps)])
            point, w, eta_k, s_k = loss_drop_pairs(c, self.ratio)
            floor = ETA_FLOOR * float(np.abs(c.eta).max())
            points.append(c.rows[point])
            ws.append(w)
            etas.append(np.maximum(eta_k, floor))
            ss.append(np.maximum(s_k, 0.0))
        point = np.concatenate(points)
        # (n, pairs) sparse sum with the cell decreases as weights: LD/B = M @ G
        M = sparse.csr_matrix((np.concatenate(ws), (point, np.arange(point.size))), shape=(n, point.size))
        return {"logX": log_x, "M": M, "log_eta": np.log(np.concatenate(etas)), "S": np.concatenate(ss)}

    def subset(self, x, rows):
        """The rows ``rows`` of the prepared inputs, keeping only the loss-drop pairs those rows use."""
        M = x["M"][np.asarray(rows)]
        pairs = np.unique(M.indices)
        return {"logX": x["logX"][rows], "M": M[:, pairs], "log_eta": x["log_eta"][pairs], "S": x["S"][pairs]}

    def log_predict(self, theta, x, grad=False):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the fitter rejects non-finite rows
            return self._log_predict(theta, x, grad)

    def _log_predict(self, theta, x, grad):
        l0, a, alpha, b, c, beta, gamma = (theta[:, i : i + 1] for i in range(7))  # each (S, 1)
        L0, B, C = np.exp(l0), np.exp(b), np.exp(c)
        M, log_eta = x["M"], x["log_eta"]
        cu = C * np.exp(-gamma * log_eta) * x["S"]  # C·η_k^-γ·S_k(t), (S, pairs)
        log_v = np.log1p(cu)
        v_beta = np.exp(-beta * log_v)  # (C·x + 1)^-β
        ld = (M @ (1.0 - v_beta).T).T  # Σ_k Δη_k·G, (S, n)
        power = np.exp(a - alpha * x["logX"])  # A·(S1 + S_W)^-α
        loss = L0 + power - B * ld
        pred = np.log(loss)  # NaN where the law goes non-positive: the fitter treats it as uphill
        if not grad:
            return pred
        inv = 1.0 / loss
        q = beta * v_beta * cu / (1.0 + cu)  # ∂G/∂log C
        d_c = (M @ q.T).T
        d_beta = (M @ (v_beta * log_v).T).T
        d_gamma = -(M @ (q * log_eta).T).T
        jac = np.stack(np.broadcast_arrays(
            L0 * inv, power * inv, -power * x["logX"] * inv,
            -B * ld * inv, -B * d_c * inv, -B * d_beta * inv, -B * d_gamma * inv,
        ), axis=-1)
        return pred, jac

    def to_public(self, theta):
        l0, a, alpha, b, c, beta, gamma = (float(v) for v in theta)
        return {"L0": float(np.exp(l0)), "A": float(np.exp(a)), "alpha": alpha, "B": float(np.exp(b)),
                "C": float(np.exp(c)), "beta": beta, "gamma": gamma}

    def from_public(self, params: Mapping[str, float]):
        return np.array([np.log(params["L0"]), np.log(params["A"]), params["alpha"], np.log(params["B"]),
                         np.log(params["C"]), params["beta"], params["gamma"]])
