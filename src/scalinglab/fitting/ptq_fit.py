"""Fit the PTQ-degradation law to quantized evaluations, on top of a loss law L(N, D), with one bootstrap.

    scalinglab fit QUANT --law ptq                          δ_PTQ alone
    scalinglab fit QUANT --law ptq --base fit.json          + a loss law fitted elsewhere (e.g. a bigger ladder)
    scalinglab fit QUANT --law ptq --base-law chinchilla    + a loss law fitted here, to the runs' float losses

The loss after quantization is L(N, D) + δ_PTQ(N, D, P) (Kumar et al. 2024, Eq. 2 added to the loss law).
Intervals: each bootstrap replicate resamples **runs** (all bit widths of a run together, since they share
one model) and refits δ_PTQ; with ``--base-law`` the same draw also refits L on those runs' float losses, so
replicate i of L and replicate i of δ come from one resampled ladder ("same-runs"). With ``--base`` the file's
own replicates are paired by index with δ's ("independent": two data sets, two independent bootstraps).

``--holdout largest-dn=K`` holds out the K runs of largest tokens per parameter (all their rows) and scores
the predicted post-quantization loss there against its interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.api import fit
from scalinglab.fitting.bootstrap import (
    CHUNK,
    check_replicates,
    percentile_ci,
    refit_chunk,
    replicate_weights,
)
from scalinglab.fitting.objective import HUBER_DELTA
from scalinglab.fitting.precision_file import PrecisionFit, check_base_law
from scalinglab.fitting.quant_evals import TARGET, QuantEvals, load_quant_evals
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.laws.registry import get_law


@dataclass(frozen=True)
class PTQFitConfig:
    base: str | Path | None = None  # a fit file of a law over (params, tokens)
    base_law: str | None = None  # or: fit this law to the runs' float losses, same bootstrap
    method: str | None = None  # the quantization method to fit when the table mixes several
    huber_delta: float = HUBER_DELTA
    bootstrap: int = 0
    level: float = 0.95
    holdout: str | None = None  # "largest-dn=K"
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        if self.base is not None and self.base_law is not None:
            raise InputError("fit --law ptq: give --base FIT or --base-law LAW, not both")
        check_replicates(self.bootstrap)
        if not 0 < self.level < 1:
            raise InputError(f"--level: {self.level} must be between 0 and 1")
        if self.base_law is not None:
            check_base_law(get_law(self.base_law), "--base-law")
        parse_dn_holdout(self.holdout)


def parse_dn_holdout(text: str | None) -> int:
    """``largest-dn=K`` → K (0 for none)."""
    if not text:
        return 0
    m = re.fullmatch(r"\s*largest-dn\s*=\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1:
        raise InputError(f"--holdout: '{text}' is not of the form largest-dn=K with K >= 1 (the K runs of most "
                         "tokens per parameter are held out)")
    return int(m.group(1))


def _split_dn(evals: QuantEvals, k: int) -> tuple[QuantEvals, pd.DataFrame]:
    """(evaluations of the fitted runs, every row of the K held-out runs, δ ≤ 0 rows included)."""
    if k >= len(evals.runs):
        raise InputError(f"--holdout: K={k} leaves no runs to fit ({len(evals.runs)} runs)")
    dn = evals.runs["tokens"] / evals.runs["params"]
    held = set(evals.runs["run"].to_numpy()[np.argsort(dn.to_numpy(), kind="stable")[-k:]])
    keep_rows = ~evals.rows["run"].isin(held).to_numpy()
    keep_runs = ~evals.runs["run"].isin(held).to_numpy()
    rows, runs = evals.rows[keep_rows].reset_index(drop=True), evals.runs[keep_runs].reset_index(drop=True)
    if rows.empty:
        raise InputError("--holdout: no positive loss increase left among the fitted runs")
    ratio = rows["tokens"] / rows["params"]
    summary = {**evals.summary, "runs": int(len(runs)), "rows": int(len(rows)),
               "bits": [float(rows["bits"].min()), float(rows["bits"].max())],
               "tokens_per_param": [float(ratio.min()), float(ratio.max())]}
    fitted = QuantEvals(rows=rows, all_rows=evals.all_rows[~evals.all_rows["run"].isin(held)], runs=runs, source=evals.source, method=evals.method,
                        excluded_nonpositive=evals.excluded_nonpositive, summary=summary)
    held_rows = evals.all_rows[evals.all_rows["run"].isin(held)].reset_index(drop=True)
    return fitted, held_rows


def _attach(result: FitResult, theta_b: np.ndarray, ok: np.ndarray, level: float, n: int) -> None:
    law = get_law(result.law)
    names = list(result.params)
    samples = np.array([[law.to_public(t)[k] for k in names] for t in theta_b[ok]]).reshape(-1, len(names))
    lo, hi = percentile_ci(samples, level)
    result.bootstrap = Bootstrap(n=n, level=level, ci={k: [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)},
                                 samples={k: samples[:, i].tolist() for i, k in enumerate(names)}, failed=int((~ok).sum()))


def _refit(result: FitResult, x: dict, y: np.ndarray, delta: float, weights: np.ndarray,
           progress) -> tuple[np.ndarray, np.ndarray]:
    """Refit ``result``'s law on every replicate (rows of ``weights``), from the full-data optimum."""
    law = get_law(result.law)
    bounds = law.bounds()
    bounds = None if all(b == (None, None) for b in bounds) else bounds
    start = np.asarray(result.theta, dtype=float)[None, :]
    thetas, fs = [], []
    for i in range(0, len(weights), CHUNK):
        t, f = refit_chunk(result.law, x, y, delta, weights[i : i + CHUNK], start, bounds)
        thetas.append(t)
        fs.append(f)
        if progress:
            progress(len(t))
    return np.concatenate(thetas), np.concatenate(fs)


def _bootstrap(ptq: FitResult, base: FitResult | None, evals: QuantEvals, config: PTQFitConfig) -> None:
    """One multinomial draw of runs per replicate, applied to δ's rows and (with --base-law) L's runs."""
    runs = evals.runs["run"].to_numpy()
    counts = replicate_weights(runs, config.bootstrap, np.random.default_rng(config.seed))  # (B, runs), sorted runs
    position = {r: i for i, r in enumerate(np.unique(runs))}
    w_ptq = counts[:, [position[r] for r in evals.rows["run"]]]
    law = get_law("ptq")
    x = law.prepare({c: evals.rows[c].to_numpy(float) for c in law.inputs})
    steps = [(ptq, x, evals.rows[TARGET].to_numpy(float), w_ptq)]
    if base is not None:
        base_law = get_law(base.law)
        xb = base_law.prepare({c: evals.runs[c].to_numpy(float) for c in base_law.inputs})
        steps.append((base, xb, evals.runs["loss"].to_numpy(float), counts[:, [position[r] for r in runs]]))
    from scalinglab.fitting.api import _progress_bar

    total = config.bootstrap * len(steps)
    with _progress_bar(config.progress, total, "bootstrap") as bar:
        task = bar.add_task("bootstrap", total=total) if bar else None
        fits = [_refit(r, xs, y, config.huber_delta, w, (lambda k: bar.advance(task, k)) if bar else None)
                for r, xs, y, w in steps]
    ok = np.all([np.isfinite(f) for _, f in fits], axis=0)  # a replicate counts only if every refit converged
    for (result, *_), (theta_b, _) in zip(steps, fits, strict=True):
        _attach(result, theta_b, ok, config.level, config.bootstrap)


MAD_TO_SD = 1.4826  # normalised median absolute deviation: the standard deviation of a normal sample


def _log_sd(result: FitResult, table: pd.DataFrame, target: str) -> float:
    """Robust spread of one run's log target around the fitted law: the scatter a prediction interval adds."""
    law = get_law(result.law)
    pred = law.predict(result.params, {c: table[c].to_numpy(float) for c in law.inputs})
    r = np.log(table[target].to_numpy(float)) - np.log(pred)
    return float(MAD_TO_SD * np.median(np.abs(r - np.median(r))))


def fit_ptq(data, config: PTQFitConfig | None = None, columns=None, **kwargs) -> PrecisionFit:
    """Quantized evaluations (a file or a frame) → :class:`PrecisionFit` (δ_PTQ, and L(N, D) when given)."""
    config = config or PTQFitConfig(**kwargs)
    base_file = None
    if config.base is not None:  # validated before any work
        base_file = FitResult.load(config.base)
        check_base_law(get_law(base_file.law), f"{config.base}")
    evals = load_quant_evals(data, method=config.method, columns=columns)
    held = None
    k = parse_dn_holdout(config.holdout)
    if k:
        evals, held = _split_dn(evals, k)
    rows = evals.rows.copy()
    rows.attrs = {"source": evals.source}
    ptq = fit(rows, "ptq", target=TARGET, huber_delta=config.huber_delta)
    base, pairing = base_file, None
    if config.base_law is not None:
        runs = evals.runs.copy()
        runs.attrs = {"source": f"{evals.source} (float loss of each run)"}
        base = fit(runs, config.base_law, huber_delta=config.huber_delta)
    if config.bootstrap:
        _bootstrap(ptq, base if config.base_law else None, evals, config)
        if base is not None and base.bootstrap is not None:
            pairing = "same-runs" if config.base_law else "independent"
    scatter = {"ptq_log_sd": _log_sd(ptq, rows, TARGET),
               "base_log_sd": _log_sd(base, evals.runs, "loss") if config.base_law else None}
    result = PrecisionFit(base=base, ptq=ptq, pairing=pairing, evaluations={**evals.summary, "scatter": scatter})
    if held is not None:
        from scalinglab.planning.precision import score_holdout

        result.holdout = score_holdout(result, held, k)
    return result
