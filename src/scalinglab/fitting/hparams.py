"""Fit the hyperparameter laws of a sweep: η*(N, D), B*(D), the steps/batch trade-off and B_crit.

    from scalinglab.fitting.hparams import HparamsConfig, fit_hparams
    hp = fit_hparams(final_rows, curves, HparamsConfig(n_boot=200))    # an HparamsResult
    hp.save("hp.json")

1. Optima (:mod:`scalinglab.fitting.sweep_optima`): per (N, D) the parabola minimum of the loss in
   log η (profiled over B) and in log B (profiled over η).
2. ``optimal_lr`` (c·N^a·D^b) and ``optimal_batch`` (c·D^b) fitted to the optima by least squares in
   log space, as DeepSeek LLM (Bi et al. 2024) and Li et al. (2025) do. The law's own Jacobian is the
   design matrix (the laws are planes in log space). Intervals: a bootstrap over runs — resample the
   runs of every (N, D) group with replacement, locate the optima again, refit.
3. With evaluation curves: steps to a target loss per run (:mod:`scalinglab.fitting.steps_to_target`),
   the best over η at each (N, B), and McCandlish et al.'s (2018) ``batch_tradeoff`` over N through
   the package fitter, plus a one-size fit per N whose B_crit values feed ``critical_batch`` over N and
   over D (Zhang et al. 2024); whichever leaves the smaller RMS log residual "explains the sweep better".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.fitting.steps_to_target import steps_to_target
from scalinglab.fitting.sweep_optima import WINDOW, nominal_budgets, parabola_minimum, sweep_optima
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law

__all__ = ["HparamsConfig", "fit_hparams", "fit_log_linear", "bootstrap_optima"]

TRADEOFF_DELTA = 0.1  # Huber δ on log-step residuals: steps read off curves scatter by several per cent


@dataclass(frozen=True)
class HparamsConfig:
    n_boot: int = 200
    level: float = 0.95
    seed: int = 0
    window: int = WINDOW
    target_loss: float | None = None  # steps-to-target: one loss for every run (default: per size)

    def __post_init__(self):
        if self.n_boot < 0:
            raise InputError(f"--bootstrap: {self.n_boot} must be >= 0")
        if not 0 < self.level < 1:
            raise InputError(f"--level: {self.level} must be between 0 and 1")
        if self.target_loss is not None and not self.target_loss > 0:
            raise InputError(f"--target-loss: {self.target_loss} must be > 0")


def fit_log_linear(law: Law, table: pd.DataFrame) -> np.ndarray:
    """θ of a monomial law by least squares on log(target): the Jacobian is the design matrix."""
    x = law.prepare({c: table[c].to_numpy(float) for c in law.inputs})
    _, jac = law.log_predict(np.zeros((1, law.n_params)), x, grad=True)
    theta, *_ = np.linalg.lstsq(jac[0], np.log(table[law.target].to_numpy(float)), rcond=None)
    return theta


def _measured(optima: pd.DataFrame, knob: str) -> pd.DataFrame:
    return optima[(optima["status"] == "ok") & np.isfinite(optima[knob])]


def bootstrap_optima(runs: pd.DataFrame, law: Law, knob: str, n_boot: int, seed: int, window: int) -> np.ndarray:
    """(n_boot, P) refitted θ: resample runs within every (N, D) group, re-locate optima, refit.

    A NaN row marks a replicate in which too few groups kept an interior optimum to refit.
    """
    rng = np.random.default_rng(seed)
    groups = []  # per (N, D): its inputs, the knob value of each run (as codes into log_h) and its loss
    for key, g in runs.groupby(["params", "tokens"], sort=True):
        log_h, codes = np.unique(np.log(g[knob].to_numpy(float)), return_inverse=True)
        groups.append((dict(zip(("params", "tokens"), key, strict=True)), log_h, codes, g["loss"].to_numpy(float)))
    out = np.full((n_boot, law.n_params), np.nan)
    for b in range(n_boot):
        rows = []
        for inputs, log_h, codes, loss in groups:
            pick = rng.integers(0, len(loss), len(loss))
            best = np.full(log_h.size, np.inf)
            np.minimum.at(best, codes[pick], loss[pick])  # the profile over the other knob, resampled
            seen = np.isfinite(best)
            opt = parabola_minimum(log_h[seen], best[seen], window)
            if opt.status == "ok":
                rows.append({**inputs, knob: float(np.exp(opt.log_h))})
        if len(rows) > law.n_params:
            out[b] = fit_log_linear(law, pd.DataFrame(rows))
    return out


def _fit_result(law: Law, theta: np.ndarray, data: pd.DataFrame, source: str, samples: np.ndarray | None,
                level: float, extra: dict | None = None) -> dict:
    x = law.prepare({c: data[c].to_numpy(float) for c in law.inputs})
    resid = law.log_predict(theta[None], x)[0] - np.log(data[law.target].to_numpy(float))
    result = FitResult(law=law.name, formula=law.formula, params=law.to_public(theta),
                       objective=float(0.5 * np.sum(resid**2)), n_points=len(data), huber_delta=float("inf"),
                       theta=theta.tolist(), data_source=source,
                       inputs={c: [float(data[c].min()), float(data[c].max())] for c in law.inputs})
    result.diagnostics = {"rms_log_residual": float(np.sqrt(np.mean(resid**2))), **(extra or {})}
    if samples is not None:
        ok = np.isfinite(samples).all(axis=1)
        public = np.array([list(law.to_public(t).values()) for t in samples[ok]])
        names = list(result.params)
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(public, [tail, 100 - tail], axis=0)
        result.bootstrap = Bootstrap(n=int(len(samples)), level=level,
                                     ci={k: [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)},
                                     samples={k: public[:, i].tolist() for i, k in enumerate(names)},
                                     failed=int((~ok).sum()))
    return result.to_dict()


def _optimum_law(runs: pd.DataFrame, law_name: str, knob: str, config: HparamsConfig, source: str) -> dict:
    law = get_law(law_name)
    optima = sweep_optima(runs, knob, window=config.window)
    data = _measured(optima, knob)
    if len(data) <= law.n_params:
        reasons = ", ".join(f"{s}: {k}" for s, k in optima["status"].value_counts().items())
        raise InputError(f"{source}: {law_name} needs more than {law.n_params} (N, D) groups with an interior "
                         f"{knob} optimum, found {len(data)} ({reasons}); widen the {knob} sweep")
    x = law.prepare({c: data[c].to_numpy(float) for c in law.inputs})
    if np.linalg.matrix_rank(law.log_predict(np.zeros((1, law.n_params)), x, grad=True)[1][0]) < law.n_params:
        raise InputError(f"{source}: {law_name}: the (N, D) groups with a {knob} optimum cannot determine the "
                         f"exponents of {' and '.join(law.inputs)}; sweep at least two token budgets "
                         "(for optimal_lr, two budgets per size)")
    theta = fit_log_linear(law, data)
    samples = bootstrap_optima(runs, law, knob, config.n_boot, config.seed, config.window) if config.n_boot else None
    grid = np.sort(runs[knob].unique())
    out = _fit_result(law, theta, data, source, samples, config.level,
                      {"grid": grid.tolist(), "grid_step_log": float(np.median(np.diff(np.log(grid))))})
    out["optima"] = optima.to_dict(orient="records")
    if law_name == "optimal_lr":
        out["heldout"] = heldout_largest(law, data, out["diagnostics"]["grid_step_log"])
    return out


def heldout_largest(law: Law, optima: pd.DataFrame, grid_step_log: float) -> dict | None:
    """Fit on every size but the largest, predict the largest's optima: the extrapolation check.

    The prediction passes when it lies within one grid step (in log) of the measured optimum, the
    resolution the sweep itself has.
    """
    largest = optima["params"].max()
    train, held = optima[optima["params"] < largest], optima[optima["params"] == largest]
    if len(train) <= law.n_params or held.empty:
        return None
    x = law.prepare({c: train[c].to_numpy(float) for c in law.inputs})
    if np.linalg.matrix_rank(law.log_predict(np.zeros((1, law.n_params)), x, grad=True)[1][0]) < law.n_params:
        return None
    theta = fit_log_linear(law, train)
    xh = law.prepare({c: held[c].to_numpy(float) for c in law.inputs})
    pred = np.exp(law.log_predict(theta[None], xh)[0])
    rows = []
    for (_, r), p in zip(held.iterrows(), pred, strict=True):
        steps = abs(np.log(p / r[law.target])) / grid_step_log
        rows.append({"params": float(r["params"]), "tokens": float(r["tokens"]), "predicted": float(p),
                     "measured": float(r[law.target]), "grid_steps": float(steps), "within_one_step": bool(steps <= 1)})
    return {"params": law.to_public(theta), "rows": rows}


def _noise_at(noise: pd.DataFrame | None, runs: pd.DataFrame) -> float:
    """Median over ``runs`` (run, step) of B_simple interpolated in log step at each run's crossing."""
    if noise is None or noise.empty:
        return float("nan")
    values = []
    for run, step in zip(runs["run"], runs["step"], strict=True):
        g = noise[noise["run"] == run].sort_values("step")
        if len(g):
            values.append(float(np.exp(np.interp(np.log(step), np.log(g["step"].to_numpy(float)),
                                                 np.log(g["b_simple"].to_numpy(float))))))
    return float(np.median(values)) if values else float("nan")


def _tradeoff(curves: pd.DataFrame, config: HparamsConfig, source: str, noise: pd.DataFrame | None = None) -> dict | None:
    from scalinglab.fitting.api import fit

    stt = steps_to_target(curves, config.target_loss)
    reached = stt[stt["reached"]]
    best = reached.loc[reached.groupby(["params", "batch_size"])["step"].idxmin()]
    if best["batch_size"].nunique() < 3 or len(best) < 5:
        return None
    out: dict[str, Any] = {"steps_to_target": stt.to_dict(orient="records")}
    table = best[["run", "params", "batch_size", "step", "tokens"]].reset_index(drop=True)
    if table["params"].nunique() >= 2:
        res = fit(table, "batch_tradeoff", huber_delta=TRADEOFF_DELTA, bootstrap=min(config.n_boot, 200),
                  level=config.level, seed=config.seed, jobs=1)
        out["batch_tradeoff"] = res.to_dict()
    per_size = []
    for n, g in table.groupby("params"):
        if g["batch_size"].nunique() >= 3:
            r = fit(g, "batch_tradeoff:column=none", huber_delta=TRADEOFF_DELTA)
            e_min = r.params["B_crit"] * r.params["S_min"]  # sequences (McCandlish et al. Eq. 2.11: B_crit = E_min/S_min)
            tokens_per_seq = float((g["tokens"] / (g["step"] * g["batch_size"])).median())
            b_noise = _noise_at(noise, g)
            per_size.append({"params": float(n), "S_min": r.params["S_min"], "B_crit": r.params["B_crit"],
                             "tokens": e_min * tokens_per_seq, "target": float(stt.loc[stt.params == n, "target"].iloc[0]),
                             "B_simple": b_noise, "ratio": r.params["B_crit"] / b_noise})
    out["per_size"] = per_size
    return out


def edge_bound(runs: pd.DataFrame, knob: str) -> dict | None:
    """{"at_most": v} when every (N, D) group is best at the grid's smallest ``knob`` v ({"at_least": v} for
    the largest), else None: what the sweep still says when it measured no optimum."""
    from scalinglab.fitting.sweep_optima import profile

    best = []
    for _, g in runs.groupby(["params", "tokens"], sort=True):
        h, loss = profile(g, knob)
        best.append(float(h[int(np.argmin(loss))]))
    lo, hi = float(runs[knob].min()), float(runs[knob].max())
    if best and all(b == lo for b in best):
        return {"at_most": lo}
    if best and all(b == hi for b in best):
        return {"at_least": hi}
    return None


def compare_critical_batch(points: pd.DataFrame, source: str) -> dict | None:
    """critical_batch over N and over D on (params, tokens, batch_size = B_crit) points; which fits better."""
    if len(points) < 3:
        return None
    fits = {}
    for column in ("params", "tokens"):
        if points[column].nunique() < 2:
            continue
        law = get_law("critical_batch" if column == "tokens" else "critical_batch:column=params")
        fits[column] = _fit_result(law, fit_log_linear(law, points), points, source, None, 0.95)
    if not fits:
        return None
    rms = {k: v["diagnostics"]["rms_log_residual"] for k, v in fits.items()}
    return {"fits": fits, "rms_log_residual": rms, "better": min(rms, key=rms.get)}


@dataclass
class HparamsResult:
    source: str
    optimal_lr: dict | None = None
    optimal_batch: dict | None = None
    tradeoff: dict | None = None
    critical_batch: dict | None = None
    seq_len: float | None = None  # tokens per sequence, when every run shares one
    notes: list[str] = field(default_factory=list)
    # When no B* was measured because every (N, D) was best at the same edge of the grid: that bound
    batch_bound: dict | None = None

    def to_dict(self) -> dict:
        from scalinglab.fitting.result import _plain

        return _plain({"kind": "scalinglab-hparams", "source": self.source, "seq_len": self.seq_len,
                       "optimal_lr": self.optimal_lr, "optimal_batch": self.optimal_batch,
                       "tradeoff": self.tradeoff, "critical_batch": self.critical_batch, "notes": self.notes,
                       "batch_bound": self.batch_bound})


def fit_hparams(finals: pd.DataFrame, curves: pd.DataFrame | None = None, config: HparamsConfig = HparamsConfig(),
                source: str = "table", noise: pd.DataFrame | None = None) -> HparamsResult:
    """Fit every hyperparameter law the sweep supports; laws it cannot support are skipped with a note.

    ``noise`` (run, params, tokens, step, b_simple; :func:`scalinglab.runs.store.load_noise_scale`) adds
    the gradient noise scale: B_simple at each size's target, beside the trade-off's B_crit, and as the
    points critical_batch is fitted to (over N and over D).
    """
    from scalinglab.runs.schema import validate

    finals = validate(finals, ("params", "tokens", "loss"), source).copy()
    finals["tokens"] = nominal_budgets(finals["tokens"].to_numpy())  # one D per budget, whatever the batch
    out = HparamsResult(source=source)
    if "seq_len" in finals.columns and finals["seq_len"].nunique() == 1:
        out.seq_len = float(finals["seq_len"].iloc[0])
    for law_name, knob, attr in (("optimal_lr", "lr", "optimal_lr"), ("optimal_batch", "batch_size", "optimal_batch")):
        if knob not in finals.columns or finals[knob].nunique() < 3:
            out.notes.append(f"{law_name}: skipped (the table sweeps fewer than 3 values of '{knob}')")
            continue
        try:
            setattr(out, attr, _optimum_law(finals, law_name, knob, config, source))
        except InputError as exc:
            out.notes.append(str(exc))
    if out.optimal_batch is None and "batch_size" in finals.columns and finals["batch_size"].nunique() >= 2:
        out.batch_bound = edge_bound(finals, "batch_size")
    if curves is not None and "batch_size" in curves.columns and curves["batch_size"].nunique() >= 3:
        out.tradeoff = _tradeoff(curves, config, source, noise)
    if noise is not None and len(noise) >= 3 and (noise["b_simple"] > 0).all():
        points = noise[["run", "params", "tokens", "b_simple"]].rename(columns={"b_simple": "batch_size"})
        out.critical_batch = compare_critical_batch(points, source)
        if out.critical_batch:
            out.critical_batch["data"] = "gradient noise scale B_simple at every evaluation"
    elif out.tradeoff and out.tradeoff.get("per_size"):
        pts = pd.DataFrame(out.tradeoff["per_size"]).rename(columns={"B_crit": "batch_size"})
        out.critical_batch = compare_critical_batch(pts, source)
        if out.critical_batch:
            out.critical_batch["data"] = "B_crit of the per-size steps/batch trade-off"
    if out.optimal_lr is None and out.optimal_batch is None and out.tradeoff is None:
        raise InputError(f"{source}: no hyperparameter law could be fitted ({'; '.join(out.notes)})")
    return out


def load_sweep(path, columns=None) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """(final row per run, every evaluation or None, noise scale or None) from a run store or a table file."""
    from pathlib import Path

    from scalinglab.runs.io import SQLITE_SUFFIXES, read_runs
    from scalinglab.runs.schema import canonicalize, coerce_numeric, derive

    path = Path(path)
    table = read_runs(path, columns)
    if path.suffix.lower() in SQLITE_SUFFIXES:
        from scalinglab.runs.store import load_noise_scale, load_run_table

        raw = load_run_table(path, final_only=False)
        curves = derive(coerce_numeric(canonicalize(raw, None, str(path)), str(path)), str(path))
        noise = load_noise_scale(path)
        return table, curves, (noise if len(noise) else None)
    if "step" in table.columns and table.groupby("run")["step"].nunique().max() > 1:
        finals = table.sort_values("step").groupby("run", sort=False).tail(1).sort_index()
        finals.attrs = dict(table.attrs)
        return finals, table, _noise_column(path, table)
    return table, None, None


def _noise_column(path, curves: pd.DataFrame) -> pd.DataFrame | None:
    """A ``b_simple`` column of a CSV/TSV table (as `examples/export_hparams_sweep.py` writes it), or None."""
    if path.suffix.lower() not in (".csv", ".tsv"):
        return None
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    raw = pd.read_csv(path, sep=sep, skipinitialspace=True, usecols=lambda c: c in ("run", "step", "b_simple"))
    if not {"run", "step", "b_simple"} <= set(raw.columns):
        return None
    raw["b_simple"] = pd.to_numeric(raw["b_simple"], errors="coerce")
    raw = raw[raw["b_simple"] > 0]  # runs without accumulation have none
    if raw.empty:
        return None
    raw["run"], raw["step"] = raw["run"].astype(str), raw["step"].astype(float)
    return raw.merge(curves[["run", "step", "params", "tokens"]], on=["run", "step"], how="inner")
