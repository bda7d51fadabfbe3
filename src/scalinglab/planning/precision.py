"""The loss a model will have after quantization, and the compute-optimal plan for the serving precision.

    L_P(N, D) = L(N, D) + δ_PTQ(N, D, P)          (Kumar et al. 2024: the loss law plus Eq. 2)

``predict_served`` evaluates it (and L and δ separately); ``plan_served`` minimises it along the IsoFLOP
curve C = 6·N·D with the same optimiser as ``scalinglab plan`` (a log-N grid, then Brent's method) and sets
the result beside the full-precision plan. Because δ grows with D and shrinks with N (γ_D, γ_N > 0 in the
paper), serving at low precision moves the optimum toward larger models trained on fewer tokens each.

Intervals: every bootstrap replicate (L's replicate i with δ's replicate i, see
:mod:`scalinglab.fitting.precision_file`) is pushed through the same computation, shifts included, so each
interval carries both fits' uncertainty. Warnings name every quantity the plan or forecast extrapolates.
"""

from __future__ import annotations

import numpy as np

from scalinglab.errors import InputError
from scalinglab.fitting.bootstrap import percentile_ci
from scalinglab.fitting.precision_file import PrecisionFit
from scalinglab.laws.base import Law
from scalinglab.laws.ptq import BITS_RANGE, PTQ
from scalinglab.laws.registry import get_law
from scalinglab.planning.compute_optimal import MIN_FLOPS, optimum
from scalinglab.planning.predict import theta_samples
from scalinglab.runs.schema import FLOPS_PER_PARAM_TOKEN

FULL_PRECISION_BITS = 16  # bf16: the float baseline the plan is compared with


def check_bits(bits: float, option: str = "--bits") -> float:
    if not (isinstance(bits, int | float) and np.isfinite(bits) and BITS_RANGE[0] <= bits <= BITS_RANGE[1]):
        raise InputError(f"{option}: {bits} is outside {BITS_RANGE[0]:g}…{BITS_RANGE[1]:g} bits")
    return float(bits)


class ServedLoss(Law):
    """L(N, D) + δ_PTQ(N, D, P) at fixed P, as one law over (params, tokens); θ = [θ_L ‖ θ_δ]."""

    inputs = ("params", "tokens")

    def __init__(self, base: Law, bits: float):
        self.base, self.ptq, self.bits = base, PTQ(), float(bits)
        self.name = f"{base.name}+ptq@{bits:g}"
        self.param_names = (*base.param_names, *self.ptq.param_names)

    def prepare(self, inputs):
        n = np.asarray(inputs["params"], float)
        return {"base": self.base.prepare(inputs),
                "ptq": self.ptq.prepare({**inputs, "bits": np.full(np.shape(n), self.bits)})}

    def log_predict(self, theta, x, grad=False):
        if grad:
            raise NotImplementedError("ServedLoss is evaluated, not fitted")
        k = self.base.n_params
        return np.logaddexp(self.base.log_predict(theta[:, :k], x["base"]),
                            self.ptq.log_predict(theta[:, k:], x["ptq"]))


def _paired(pf: PrecisionFit) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    """(θ_L replicates, θ_δ replicates, level), paired by index; a fit without a bootstrap repeats its optimum."""
    tp = theta_samples(PTQ(), pf.ptq)
    tb = theta_samples(get_law(pf.base.law), pf.base) if pf.base is not None else None
    level = (pf.ptq.bootstrap or (pf.base.bootstrap if pf.base else None))
    level = level.level if level else None
    if tp is None and tb is None:
        return None, None, None
    if pf.base is not None:
        if tb is None:
            tb = np.tile(np.asarray(pf.base.theta, float), (len(tp), 1))
        if tp is None:
            tp = np.tile(np.asarray(pf.ptq.theta, float), (len(tb), 1))
        n = min(len(tb), len(tp))
        return tb[:n], tp[:n], level
    return None, tp, level


def _interval(values, level) -> list[float]:
    lo, hi = percentile_ci(np.asarray(values, dtype=float), level)
    return [float(lo), float(hi)]


def _beyond(value: float, span, what: str, fitted: str) -> str | None:
    if span is None:
        return None
    lo, hi = span
    if value > hi * (1 + 1e-9):
        return f"{what} = {value:.3g} is {value / hi:.3g}× the largest {fitted} ({hi:.3g}): extrapolated"
    if value < lo * (1 - 1e-9):
        return f"{what} = {value:.3g} is below the smallest {fitted} ({lo:.3g}): extrapolated"
    return None


def extrapolation_warnings(pf: PrecisionFit, N: float, D: float, bits: float | None) -> list[str]:
    """Plain-language notes on every input beyond the data either law was fitted on."""
    ev, ptq_in = pf.evaluations, pf.ptq.inputs
    notes = [
        _beyond(bits, ev.get("bits") or ptq_in.get("bits"), "bits", "bit width δ_PTQ was fitted on") if bits else None,
        _beyond(D / N, ev.get("tokens_per_param"), "tokens per parameter", "D/N δ_PTQ was fitted on"),
        _beyond(N, ptq_in.get("params"), "N", "model δ_PTQ was fitted on"),
    ]
    if pf.base is not None:
        notes += [_beyond(N, pf.base.inputs.get("params"), "N", "model L(N, D) was fitted on"),
                  _beyond(D, pf.base.inputs.get("tokens"), "D", "token count L(N, D) was fitted on")]
    return [n for n in notes if n]


def _check_point(N: float, D: float) -> None:
    for name, v in (("--params", N), ("--tokens", D)):
        if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
            raise InputError(f"predict: {name} must be a finite number > 0 (got {v})")


def predict_served(pf: PrecisionFit, N: float, D: float, bits: float) -> dict:
    """Loss after quantization to ``bits`` at (N, D), with the float loss and δ separately; intervals when bootstrapped."""
    _check_point(N, D)
    bits = check_bits(bits)
    ptq = PTQ()
    x = {"params": np.array([float(N)]), "tokens": np.array([float(D)])}
    xp = ptq.prepare({**x, "bits": np.array([bits])})
    with np.errstate(all="ignore"):
        delta = float(np.exp(ptq.log_predict(np.asarray(pf.ptq.theta, float)[None], xp))[0, 0])
    out: dict = {"inputs": {"params": float(N), "tokens": float(D), "bits": bits}, "ptq_delta": {"value": delta}}
    tb, tp, level = _paired(pf)
    with np.errstate(all="ignore"):
        d_b = np.exp(ptq.log_predict(tp, xp))[:, 0] if tp is not None else None
    if d_b is not None:
        out["ptq_delta"]["interval"] = _interval(d_b, level)
    if pf.base is not None:
        law = get_law(pf.base.law)
        xb = law.prepare(x)
        with np.errstate(all="ignore"):
            lf = float(np.exp(law.log_predict(np.asarray(pf.base.theta, float)[None], xb))[0, 0])
        if not np.isfinite(lf + delta):
            raise InputError(f"predict: no finite loss at N={N:g}, D={D:g}; the inputs are too far outside the fitted range")
        out["loss"] = lf + delta
        out["loss_float"] = {"value": lf}
        if tb is not None:
            with np.errstate(all="ignore"):
                lf_b = np.exp(law.log_predict(tb, xb))[:, 0]
            out["interval"] = _interval(lf_b + d_b, level)
            out["loss_float"]["interval"] = _interval(lf_b, level)
    if d_b is not None:
        _prediction_intervals(out, pf, d_b, lf_b if pf.base is not None and tb is not None else None, level)
    if level is not None:
        out["level"], out["pairing"] = level, pf.pairing
        out["replicates"] = int(len(tp))
    out["warnings"] = extrapolation_warnings(pf, float(N), float(D), bits)
    return out


PI_DRAWS = 4000  # scatter draws per prediction, spread over the replicates
PI_SEED = 0  # fixed: a forecast printed twice is the same forecast


def _prediction_intervals(out: dict, pf: PrecisionFit, d_b: np.ndarray, lf_b: np.ndarray | None, level: float) -> None:
    """Intervals for one new run: each replicate's forecast times the fits' run-to-run scatter (log-normal, its
    robust spread from the fit's residuals). The confidence intervals above are for the law's mean."""
    scatter = pf.evaluations.get("scatter") or {}
    sd_p, sd_b = scatter.get("ptq_log_sd"), scatter.get("base_log_sd")
    if sd_p is None:
        return
    k = max(1, PI_DRAWS // len(d_b))
    rng = np.random.default_rng(PI_SEED)
    d_new = np.repeat(d_b, k) * np.exp(sd_p * rng.standard_normal(len(d_b) * k))
    out["ptq_delta"]["prediction_interval"] = _interval(d_new, level)
    if lf_b is not None:
        lf_new = np.repeat(lf_b, k) * np.exp((sd_b or 0.0) * rng.standard_normal(len(lf_b) * k))
        out["prediction_interval"] = _interval(lf_new + d_new, level)
        out["prediction_interval_scatter"] = "δ and L" if sd_b is not None else "δ only (the base fit's scatter is unknown)"


def _allocation(N: np.ndarray, loss: np.ndarray, flops: float) -> dict[str, np.ndarray]:
    D = flops / (FLOPS_PER_PARAM_TOKEN * N)
    return {"params": N, "tokens": D, "tokens_per_param": D / N, "loss": loss}


def _served_at(base: Law, bits: float, theta_b: np.ndarray, theta_p: np.ndarray, N: np.ndarray, D: np.ndarray):
    """(float loss, δ) per row at per-row (N, D)."""
    ptq = PTQ()
    lf = np.array([np.exp(base.log_predict(t[None], base.prepare({"params": np.array([n]), "tokens": np.array([d])})))[0, 0]
                   for t, n, d in zip(theta_b, N, D, strict=True)])
    dl = np.array([np.exp(ptq.log_predict(t[None], ptq.prepare({"params": np.array([n]), "tokens": np.array([d]),
                                                                "bits": np.array([bits])})))[0, 0]
                   for t, n, d in zip(theta_p, N, D, strict=True)])
    return lf, dl


def _plan_rows(base: Law, bits: float, theta_b: np.ndarray, theta_p: np.ndarray, flops: float) -> dict:
    served = ServedLoss(base, bits)
    n_f, l_f = optimum(base, theta_b, flops)
    n_s, l_s = optimum(served, np.hstack([theta_b, theta_p]), flops)
    fl = _allocation(n_f, l_f, flops)
    sv = _allocation(n_s, l_s, flops)
    sv["loss_float"], sv["ptq_delta"] = _served_at(base, bits, theta_b, theta_p, n_s, sv["tokens"])
    lf_f, d_f = _served_at(base, bits, theta_b, theta_p, n_f, fl["tokens"])
    fl["loss_at_serve_bits"] = lf_f + d_f  # the float-optimal model, quantized afterwards
    shift = {"params_ratio": n_s / n_f, "tokens_ratio": sv["tokens"] / fl["tokens"],
             "tokens_per_param_ratio": sv["tokens_per_param"] / fl["tokens_per_param"],
             "loss_gain": fl["loss_at_serve_bits"] - l_s}
    return {"full_precision": fl, "served": sv, "shift": shift}


def plan_served(pf: PrecisionFit, flops: float, bits: float) -> dict:
    """The plan minimising L + δ_PTQ at ``bits`` beside the full-precision plan, with the shift and intervals."""
    if pf.base is None:
        raise InputError("plan: this fit file holds δ_PTQ alone; refit with --base FIT or --base-law chinchilla so "
                         "the plan has a loss law L(N, D) to add it to")
    bits = check_bits(bits, "--serve-bits")
    if not (np.isfinite(flops) and flops >= MIN_FLOPS):
        raise InputError(f"plan: --flops must be a finite number >= {MIN_FLOPS:g}; got {flops}")
    base = get_law(pf.base.law)
    theta_b = np.asarray(pf.base.theta, float)[None]
    theta_p = np.asarray(pf.ptq.theta, float)[None]
    with np.errstate(all="ignore"):
        point = _plan_rows(base, bits, theta_b, theta_p, flops)
    for part in ("full_precision", "served"):
        if not np.all([np.isfinite(v[0]) for v in point[part].values()]):
            raise InputError(f"plan: no finite compute-optimal allocation at --flops {flops:g} for this fit")
    out = {"flops": float(flops), "serve_bits": bits, "full_precision_bits": FULL_PRECISION_BITS,
           **{part: {k: float(v[0]) for k, v in vals.items()} for part, vals in point.items()}}
    tb, tp, level = _paired(pf)
    if tb is not None:
        with np.errstate(all="ignore"):
            boot = _plan_rows(base, bits, tb, tp, flops)
        for part, vals in boot.items():
            out[part]["intervals"] = {k: _interval(v, level) for k, v in vals.items()}
        out["level"], out["pairing"], out["replicates"] = level, pf.pairing, int(len(tb))
    warnings = []
    for part in ("full_precision", "served"):
        N, D = out[part]["params"], out[part]["tokens"]
        warnings += [f"{part.replace('_', ' ')} plan: {w}" for w in extrapolation_warnings(pf, N, D, bits)]
    out["warnings"] = list(dict.fromkeys(warnings))
    return out


def score_holdout(pf: PrecisionFit, held, k: int) -> dict:
    """Forecast every row of the held-out runs; is the measured loss inside its interval?"""
    rows = []
    for r in held.itertuples(index=False):
        pred = predict_served(pf, float(r.params), float(r.tokens), float(r.bits))
        row = {"run": str(r.run), "params": float(r.params), "tokens": float(r.tokens), "bits": float(r.bits),
               "actual_loss": float(r.loss), "actual_ptq_delta": float(r.ptq_delta), "ptq_delta": pred["ptq_delta"]}
        if "loss" in pred:
            row["loss"] = pred["loss"]
            if "interval" in pred:
                lo, hi = pred["interval"]
                row["interval"] = pred["interval"]
                row["inside"] = bool(lo <= r.loss <= hi)
            if "prediction_interval" in pred:
                lo, hi = pred["prediction_interval"]
                row["prediction_interval"] = pred["prediction_interval"]
                row["inside_prediction"] = bool(lo <= r.loss <= hi)
        if "prediction_interval" in pred["ptq_delta"]:
            lo, hi = pred["ptq_delta"]["prediction_interval"]
            row["delta_inside_prediction"] = bool(lo <= r.ptq_delta <= hi)
        rows.append(row)
    out: dict = {"rule": f"largest-dn={k}", "rows": rows}
    scored = [r for r in rows if "loss" in r]
    if scored:
        rel = [(r["loss"] - r["actual_loss"]) / r["actual_loss"] for r in scored]
        out["mean_abs_relative_error"] = float(np.mean(np.abs(rel)))
    judged = [r for r in rows if "inside" in r]
    if judged:
        out["inside"], out["n"] = sum(r["inside"] for r in judged), len(judged)
    for key in ("inside_prediction", "delta_inside_prediction"):
        judged = [r for r in rows if key in r]
        if judged:
            out[key] = sum(r[key] for r in judged)
    return out

