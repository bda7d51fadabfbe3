"""How to train the planned run: η*, B*, B_crit and the steps/tokens trade-off, with intervals.

Given a plan's N* and D* and a hyperparameter fit (hp.json from `scalinglab hparams`):

- η* = c·N*^a·D*^b and B* = c·D*^b (Li et al. 2025, Eq. 2–3), B* in sequences and tokens;
- B_crit at N* from the batch_tradeoff fit (McCandlish et al. 2018, S = S_min·(1 + B_crit/B)), or
  from the critical_batch law that explained the sweep better (Zhang et al. 2024);
- the trade-off: if the run at B* reaches its loss with D* tokens, then along McCandlish et al.'s
  curve (Eq. 2.11) E = E_min·(1 + B/B_crit) and S = E/B, so every batch size has its steps (∝ wall
  clock when a step's time does not grow with B, i.e. with data parallelism) and its tokens.

Each value carries the bootstrap interval of its law, and a warning when N* or D* lies beyond the
sweep the law was fitted on (extrapolation by the stated factor).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.errors import InputError
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.laws.batch import BatchTradeoff
from scalinglab.laws.registry import get_law
from scalinglab.planning.predict import log_loss_batch, theta_samples

__all__ = ["law_value", "tradeoff_scales", "plan_hparams", "TRADEOFF_MULTIPLES"]

TRADEOFF_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)  # batch sizes around B* shown in the trade-off


def _fit(d: Mapping) -> FitResult:
    known = set(FitResult.__dataclass_fields__)
    fit = FitResult(**{k: v for k, v in d.items() if k in known and k != "bootstrap"})
    boot = d.get("bootstrap")
    fit.bootstrap = Bootstrap(**{k: v for k, v in boot.items() if k in Bootstrap.__dataclass_fields__}) if boot else None
    return fit


def _interval(values: np.ndarray, level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _extrapolation(fit: FitResult, at: Mapping[str, float], what: str) -> list[str]:
    out = []
    for col, value in at.items():
        rng = fit.inputs.get(col)
        if rng and value > rng[1] * (1 + 1e-9):
            out.append(f"extrapolation of {what}: {col} {value / rng[1]:.3g}× beyond the largest in the sweep ({rng[1]:.3g})")
        elif rng and value < rng[0] * (1 - 1e-9):
            out.append(f"extrapolation of {what}: {col} {rng[0] / value:.3g}× below the smallest in the sweep ({rng[0]:.3g})")
    return out


def law_value(fit_dict: Mapping, at: Mapping[str, float], what: str) -> dict:
    """{"value", "interval" (None without a bootstrap), "warnings"} of a fitted law's target at ``at``."""
    fit = _fit(fit_dict)
    law = get_law(fit.law)
    inputs = {c: at[c] for c in law.inputs}
    value = float(np.exp(log_loss_batch(law, np.asarray(fit.theta, float), inputs)[0, 0]))
    out = {"value": value, "interval": None, "warnings": _extrapolation(fit, inputs, what)}
    samples = theta_samples(law, fit)
    if samples is not None:
        out["interval"] = _interval(np.exp(log_loss_batch(law, samples, inputs)[:, 0]), fit.bootstrap.level)
    return out


def tradeoff_scales(fit: FitResult, inputs: Mapping[str, float]) -> dict:
    """S_min and B_crit of a batch_tradeoff fit at N (or D), each {"value", "interval"}."""
    law = get_law(fit.law)
    if not isinstance(law, BatchTradeoff):
        raise InputError(f"predict: {fit.law} is not a batch_tradeoff fit")
    col = law.column
    if col != "none" and col not in inputs:
        raise InputError(f"predict: the {fit.law} law needs --{col}")
    x = {} if col == "none" else {"logX": np.log(np.atleast_1d(float(inputs[col])))}
    if col != "none" and not float(inputs[col]) > 0:
        raise InputError(f"predict: --{col} must be > 0 (got {inputs[col]})")
    log_s, log_b = law.log_scales(np.atleast_2d(fit.theta), x)
    out = {"S_min": {"value": float(np.exp(log_s[0, 0])), "interval": None},
           "B_crit": {"value": float(np.exp(log_b[0, 0])), "interval": None}}
    samples = theta_samples(law, fit)
    if samples is not None:
        s_b, b_b = law.log_scales(samples, x)
        out["S_min"]["interval"] = _interval(np.exp(s_b[:, 0]), fit.bootstrap.level)
        out["B_crit"]["interval"] = _interval(np.exp(b_b[:, 0]), fit.bootstrap.level)
        out["level"] = fit.bootstrap.level
    out["inputs"] = {} if col == "none" else {col: float(inputs[col])}
    out["warnings"] = [] if col == "none" else _extrapolation(fit, {col: float(inputs[col])}, "S_min and B_crit")
    return out


def _b_crit(hp: Mapping, params: float, tokens: float) -> dict | None:
    trade = (hp.get("tradeoff") or {}).get("batch_tradeoff")
    if trade is not None:
        fit = _fit(trade)
        col = get_law(fit.law).column
        s = tradeoff_scales(fit, {"params": params, "tokens": tokens})
        return {**s["B_crit"], "warnings": s["warnings"], "source": f"batch_tradeoff over {col}"}
    crit = hp.get("critical_batch")
    if crit is not None:
        better = crit["better"]
        v = law_value(crit["fits"][better], {"params": params, "tokens": tokens}, "B_crit")
        return {**v, "source": f"critical_batch over {better}"}
    return None


def plan_hparams(hp: Mapping, params: float, tokens: float) -> dict:
    """η*, B* (sequences, tokens), B_crit and the steps/tokens trade-off for a run of N = params, D = tokens."""
    T = hp.get("seq_len")
    at = {"params": float(params), "tokens": float(tokens)}
    out: dict = {"params": at["params"], "tokens": at["tokens"], "seq_len": T, "warnings": []}
    if hp.get("optimal_lr") is not None:
        out["lr"] = law_value(hp["optimal_lr"], at, "η*")
    if hp.get("optimal_batch") is not None:
        b = law_value(hp["optimal_batch"], at, "B*")
        out["batch_size"] = b
        if T:
            out["batch_tokens"] = {"value": b["value"] * T,
                                   "interval": None if b["interval"] is None else [v * T for v in b["interval"]]}
    bound = hp.get("batch_bound")
    if "batch_size" not in out and bound:
        (kind, v), = bound.items()
        out["batch_size"] = {"value": float(v), "interval": None, "bound": kind.replace("_", " "),
                             "warnings": [f"B* not measured: every (N, D) of the sweep was best at its "
                                          f"{'smallest' if kind == 'at_most' else 'largest'} batch size ({v:g}); "
                                          f"B* is {kind.replace('_', ' ')} that (shown in its place)"]}
        if T:
            out["batch_tokens"] = {"value": float(v) * T, "interval": None, "bound": kind.replace("_", " ")}
    crit = _b_crit(hp, at["params"], at["tokens"])
    if crit is not None:
        out["B_crit"] = crit
    for key in ("lr", "batch_size", "B_crit"):
        if key in out:
            out["warnings"] += out[key].pop("warnings")
    if "batch_size" in out and T:
        out["tradeoff"] = tradeoff_table(at["tokens"] / T, out["batch_size"]["value"],
                                         crit["value"] if crit else None)
    return out


def tradeoff_table(sequences: float, b_star: float, b_crit: float | None) -> list[dict]:
    """Steps and sequences at batch sizes around B* (McCandlish et al. 2018, Eq. 2.11).

    The plan's run at B* is taken to reach its loss with ``sequences``: E_min = E(B*)/(1 + B*/B_crit);
    then E(B) = E_min·(1 + B/B_crit) and S(B) = E(B)/B. Without B_crit, E is held fixed (S = E/B).
    """
    e_min = sequences / (1 + b_star / b_crit) if b_crit else sequences
    rows = []
    batches = [b_star * m for m in TRADEOFF_MULTIPLES] + ([b_crit] if b_crit else [])
    batches = [B for B in batches if B >= 1 or np.isclose(B, b_star)]  # no fractions of a sequence
    s_star = None
    for B in sorted(batches):
        E = e_min * (1 + B / b_crit) if b_crit else sequences
        S = E / B
        rows.append({"batch_size": float(B), "steps": float(S), "sequences": float(E)})
        if np.isclose(B, b_star):
            s_star = S
    for r in rows:
        r["relative_steps"] = r["steps"] / s_star
        r["relative_sequences"] = r["sequences"] / sequences
    return rows
