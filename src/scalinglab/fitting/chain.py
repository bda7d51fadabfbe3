"""The loss → accuracy chain: (N, D) → intermediate loss → downstream metric, with one joint bootstrap.

Bhagia et al. (2024, "Establishing Task Scaling Laws via Compute-Efficient Model Ladders", §3) predict a
task's accuracy in two steps:

    step 1   L(N, D) = E + A·N^-α + B·D^-β            fitted to the task loss of each run's final checkpoint
    step 2   Acc(L)  = a / (1 + e^(−k (L − L0))) + b   fitted to every (task loss, accuracy) checkpoint pair

and chain them: Acc(N, D) = step2(step1(N, D)). Step 1 reads the final evaluation of each run (the row
with the most tokens); step 2 reads every evaluation of every run, less the first ``skip_fraction`` of
each run's checkpoints (early checkpoints sit far from the curve; the paper drops the first 10 %).

Intervals: each bootstrap replicate resamples **runs** once and refits **both** steps on that same
replicate (a run's final point in step 1 and all its checkpoints in step 2 carry the same weight), so the
predicted accuracy's interval carries both steps' uncertainty and their correlation. A one-step baseline
(the step-1 law fitted directly from (N, D) to the target on the final rows, same replicates) is
reported beside it, as the paper does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.api import check_target, fit
from scalinglab.fitting.bootstrap import CHUNK, percentile_ci, refit_chunk, replicate_weights
from scalinglab.fitting.chain_result import ChainResult
from scalinglab.fitting.objective import HUBER_DELTA
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.fitting.validate import Holdout, parse_holdout
from scalinglab.laws.registry import get_law
from scalinglab.runs.schema import validate

SKIP_FRACTION = 0.1  # Bhagia et al. 2024, step 2: the first 10 % of each run's checkpoints are left out


@dataclass(frozen=True)
class ChainConfig:
    target: str  # the metric to predict, e.g. acc:hellaswag
    via: str = "loss"  # the intermediate loss, e.g. task_loss:hellaswag
    law: str = "chinchilla"  # step 1: (N, D) → via
    link: str = "sigmoid"  # step 2: via → target
    huber_delta: float = HUBER_DELTA
    bootstrap: int = 0
    level: float = 0.95
    holdout: Holdout | None = None
    skip_fraction: float = SKIP_FRACTION
    smooth: int = 1  # step 2 reads each run's via as a trailing moving average over this many evaluations
    anchor: tuple[float, float] | None = None  # an extra step-2 point (via, target), e.g. (0, 1): zero loss, full marks
    baseline: bool = True
    seed: int = 0
    jobs: int | None = None
    progress: bool = False

    def __post_init__(self):
        if self.target == self.via:
            raise InputError(f"--via: '{self.via}' is also the --target; the chain needs an intermediate column")
        if get_law(self.link).inputs != ("x",):
            raise InputError(f"--link: '{self.link}' is not a law of one input; expected sigmoid, exp_error or loss_to_loss")
        if "x" in get_law(self.law).inputs:
            raise InputError(f"--law: '{self.law}' takes one loss as input; step 1 needs a law of (N, D) such as chinchilla")
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap: {self.bootstrap} must be >= 0")
        if not 0 < self.level < 1:
            raise InputError(f"--level: {self.level} must be between 0 and 1")
        if not 0 <= self.skip_fraction < 1:
            raise InputError(f"--skip-fraction: {self.skip_fraction} must be in [0, 1)")
        if self.smooth < 1:
            raise InputError(f"--smooth: {self.smooth} must be >= 1")
        if self.anchor is not None and not (len(self.anchor) == 2 and all(np.isfinite(self.anchor)) and self.anchor[1] > 0):
            raise InputError(f"--anchor: {self.anchor} must be two finite numbers VIA,TARGET with TARGET > 0")


def drop_untrained(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Leave out evaluations at D = 0 tokens (the model before its first step; per-step exports such as W&B's
    start with one). No law of (N, D) is defined there, step 1 reads final evaluations only and step 2
    skips each run's earliest checkpoints; the count is kept in the result (``untrained_rows``)."""
    if "tokens" not in table.columns:
        return table, 0
    zero = (pd.to_numeric(table["tokens"], errors="coerce") == 0).to_numpy()
    if not zero.any():
        return table, 0
    return _subset(table, np.flatnonzero(~zero)), int(zero.sum())


def final_rows(table: pd.DataFrame) -> np.ndarray:
    """Index (into ``table``) of each run's final evaluation: the row with the most tokens (then the last)."""
    order = np.lexsort((np.arange(len(table)), table["tokens"].to_numpy(float), table["run"].to_numpy()))
    runs = table["run"].to_numpy()[order]
    last = np.r_[runs[1:] != runs[:-1], True]
    return np.sort(order[last])


def link_rows(table: pd.DataFrame, skip_fraction: float) -> np.ndarray:
    """Index of the checkpoints step 2 fits: each run's rows by tokens, less its first ``skip_fraction``."""
    keep = []
    for _, idx in table.groupby("run", sort=False).indices.items():
        idx = idx[np.argsort(table["tokens"].to_numpy(float)[idx], kind="stable")]
        keep.append(idx[int(np.floor(skip_fraction * len(idx))) if len(idx) > 1 else 0 :])
    return np.sort(np.concatenate(keep))


def smooth_via(table: pd.DataFrame, via: str, window: int) -> pd.DataFrame:
    """Each run's ``via`` as a trailing moving average over ``window`` evaluations (in token order)."""
    if window <= 1:
        return table
    out = table.copy()
    out.attrs = dict(table.attrs)
    values = out[via].to_numpy(float).copy()
    tokens = out["tokens"].to_numpy(float)
    for _, idx in out.groupby("run", sort=False).indices.items():
        idx = idx[np.argsort(tokens[idx], kind="stable")]
        csum = np.cumsum(np.r_[0.0, values[idx]])
        n = np.arange(1, idx.size + 1)
        lo = np.maximum(n - window, 0)
        values[idx] = (csum[n] - csum[lo]) / (n - lo)
    out[via] = values
    return out


ANCHOR_RUN = "(anchor)"


def with_anchor(checkpoints: pd.DataFrame, via: str, target: str, anchor: tuple[float, float]) -> pd.DataFrame:
    """Step 2's points plus one fixed point (the paper's helper point at zero loss and full accuracy)."""
    row = {c: np.nan for c in checkpoints.columns} | {"run": ANCHOR_RUN, via: float(anchor[0]), target: float(anchor[1])}
    for c in ("params", "tokens", "flops"):
        if c in checkpoints.columns:
            row[c] = 1.0
    out = pd.concat([checkpoints, pd.DataFrame([row])], ignore_index=True)
    out.attrs = dict(checkpoints.attrs)
    out.attrs["row_numbers"] = np.r_[np.asarray(checkpoints.attrs.get("row_numbers", np.arange(1, len(checkpoints) + 1))), 0]
    return out


BASELINE_COLUMN = "baseline_target"


def baseline_target(finals: pd.DataFrame, target: str) -> tuple[pd.DataFrame, bool]:
    """The one-step baseline's column: the target, or 1 − target when the target rises with compute.

    Laws of (N, D) such as Chinchilla fall with N and D; an accuracy rises. The baseline then fits the
    error 1 − Acc (Gadre et al. 2024 predict top-1 error the same way), and forecasts Acc = 1 − Err.
    """
    y = finals[target].to_numpy(float)
    rises = np.corrcoef(np.log(finals["flops"].to_numpy(float)), y)[0, 1] > 0 if len(y) > 2 else False
    complement = bool(rises and np.all(y < 1))
    out = finals.assign(**{BASELINE_COLUMN: 1.0 - y if complement else y})
    out.attrs = dict(finals.attrs)
    return out, complement


def _subset(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    out = table.iloc[rows].copy()
    out.attrs = dict(table.attrs)
    numbers = np.asarray(table.attrs.get("row_numbers", np.arange(1, len(table) + 1)))
    out.attrs["row_numbers"] = numbers[rows]
    return out


def _split_runs(table: pd.DataFrame, holdout: Holdout, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the K runs of largest compute (all their rows)."""
    finals = table.iloc[final_rows(table)]
    if holdout.k >= len(finals):
        raise InputError(f"--holdout: K={holdout.k} leaves no runs to fit ({len(finals)} runs)")
    held_runs = set(finals.sort_values("flops", kind="stable")["run"].iloc[-holdout.k :])
    mask = table["run"].isin(held_runs).to_numpy()
    return _subset(table, np.flatnonzero(~mask)), _subset(table, np.flatnonzero(mask))


def _boot(law_name: str, fitted: FitResult, x: dict, y: np.ndarray, delta: float, weights: np.ndarray,
          jobs: int | None, progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Refit ``law`` on every replicate (rows of ``weights``), starting from the full-data optimum."""
    law = get_law(law_name)
    bounds = law.bounds()
    bounds = None if all(b == (None, None) for b in bounds) else bounds
    starts = np.asarray(fitted.theta, dtype=float)[None, :]
    chunks = [weights[i : i + CHUNK] for i in range(0, len(weights), CHUNK)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(chunks)))
    out = []
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(refit_chunk, law_name, x, y, delta, w, starts, bounds) for w in chunks]
        for fut, w in zip(futures, chunks, strict=True):
            out.append(fut.result())
            if progress:
                progress(len(w))
    return np.concatenate([r[0] for r in out]), np.concatenate([r[1] for r in out])


def _attach(result: FitResult, theta_b: np.ndarray, ok: np.ndarray, level: float, n: int) -> None:
    law = get_law(result.law)
    names = list(result.params)
    public = [law.to_public(t) for t in theta_b[ok]]
    samples = np.array([[p[k] for k in names] for p in public]).reshape(-1, len(names))
    lo, hi = percentile_ci(samples, level)
    result.bootstrap = Bootstrap(n=n, level=level, ci={k: [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)},
                                 samples={k: samples[:, i].tolist() for i, k in enumerate(names)}, failed=int((~ok).sum()))


def fit_chain(table: pd.DataFrame, config: ChainConfig) -> ChainResult:
    """Fit step 1 (``law``: (N, D) → via), step 2 (``link``: via → target) and the one-step baseline."""
    source = str(table.attrs.get("source", "table"))
    law, link = get_law(config.law), get_law(config.link)
    needed = (*law.inputs, "run", config.via, config.target)
    table, untrained = drop_untrained(table)
    table = validate(table, needed, source, positive=(config.via, config.target))
    check_target(table, config.target, source)
    if "flops" not in table.columns:
        table = table.assign(flops=6.0 * table["params"] * table["tokens"])
    held = None
    if config.holdout:
        table, held = _split_runs(table, config.holdout, source)

    finals = _subset(table, final_rows(table))
    smoothed = smooth_via(table, config.via, config.smooth)
    checkpoints = _subset(smoothed, link_rows(smoothed, config.skip_fraction))
    if config.anchor is not None:
        checkpoints = with_anchor(checkpoints, config.via, config.target, config.anchor)
    if len(checkpoints) < link.n_params + 1:
        raise InputError(f"{source}: step 2 ({config.link}) has {len(checkpoints)} checkpoints to fit but "
                         f"{link.n_params} parameters; need at least {link.n_params + 1}")
    step1 = fit(finals, config.law, target=config.via, huber_delta=config.huber_delta)
    # Step 2 reads via under a name of its own: the anchor may put a canonical loss at 0, which is data
    # validation would rightly refuse in a loss column.
    x_col = f"{config.via} (step 2 input)"
    checkpoints = checkpoints.assign(**{x_col: checkpoints[config.via]})
    step2 = fit(checkpoints, config.link, target=config.target, x=x_col, huber_delta=config.huber_delta)
    step2.x = config.via
    baseline, complement = None, False
    if config.baseline:
        baseline_table, complement = baseline_target(finals, config.target)
        baseline = fit(baseline_table, config.law, target=BASELINE_COLUMN, huber_delta=config.huber_delta)

    result = ChainResult(target=config.target, via=config.via, law=config.law, link=config.link, step1=step1,
                         step2=step2, baseline=baseline, baseline_complement=complement, skip_fraction=config.skip_fraction,
                         runs=int(finals["run"].nunique()), data_source=source, untrained_rows=untrained)
    if config.bootstrap:
        _bootstrap(result, finals, checkpoints, config)
    if held is not None:
        result.holdout = _score_holdout(result, held, config)
    return result


def _bootstrap(result: ChainResult, finals: pd.DataFrame, checkpoints: pd.DataFrame, config: ChainConfig) -> None:
    """One multinomial draw of runs per replicate, applied to both steps (and the baseline)."""
    runs = finals["run"].to_numpy()
    counts = replicate_weights(runs, config.bootstrap, np.random.default_rng(config.seed))  # (B, runs), in runs' order
    w_final = counts  # finals has one row per run, in the same order
    position = {r: i for i, r in enumerate(runs)}
    # The anchor is not data: it keeps weight 1 in every replicate.
    w_link = np.column_stack([counts[:, position[r]] if r in position else np.ones(len(counts))
                              for r in checkpoints["run"].to_numpy()])

    law, link = get_law(config.law), get_law(config.link)
    x1 = law.prepare({c: finals[c].to_numpy(float) for c in law.inputs})
    x2 = link.prepare({"x": checkpoints[config.via].to_numpy(float)})
    y1 = finals[config.via].to_numpy(float)
    y2 = checkpoints[config.target].to_numpy(float)
    steps = [("step 1", result.step1, config.law, x1, y1, w_final),
             ("step 2", result.step2, config.link, x2, y2, w_link)]
    if result.baseline is not None:
        y0 = finals[config.target].to_numpy(float)
        steps.append(("baseline", result.baseline, config.law, x1, 1.0 - y0 if result.baseline_complement else y0, w_final))

    from scalinglab.fitting.api import _progress_bar

    fits = []
    with _progress_bar(config.progress, config.bootstrap * len(steps), "chain bootstrap") as progress:
        task = progress.add_task("chain bootstrap", total=config.bootstrap * len(steps)) if progress else None
        for _, fitted, name, x, y, w in steps:
            fits.append(_boot(name, fitted, x, y, config.huber_delta, w, config.jobs,
                              (lambda k: progress.advance(task, k)) if progress else None))
    # A replicate counts only if both steps converged, so the chained samples stay paired.
    ok = np.isfinite(fits[0][1]) & np.isfinite(fits[1][1])
    for (_, fitted, *_rest), (theta_b, f_b) in zip(steps, fits, strict=True):
        _attach(fitted, theta_b, ok if fitted is not result.baseline else np.isfinite(f_b), config.level, config.bootstrap)


def _score_holdout(result: ChainResult, held: pd.DataFrame, config: ChainConfig) -> dict:
    finals = held.iloc[final_rows(held)]
    rows = []
    for _, r in finals.iterrows():
        pred = result.predict({"params": float(r["params"]), "tokens": float(r["tokens"])})
        rows.append({"run": r["run"], "params": float(r["params"]), "tokens": float(r["tokens"]),
                     "actual_via": float(r[config.via]), "actual": float(r[config.target]), **pred})
    rel = [(p["target"]["value"] - p["actual"]) / p["actual"] for p in rows]
    return {"rule": f"{config.holdout.rule}={config.holdout.k}", "runs": rows,
            "mean_abs_relative_error": float(np.mean(np.abs(rel)))}


def chain(data, target: str, via: str = "loss", columns=None, **kwargs) -> ChainResult:
    """Python API of ``scalinglab chain``: a table or a file path → :class:`ChainResult`."""
    from pathlib import Path

    from scalinglab.runs.io import read_runs

    if isinstance(kwargs.get("holdout"), str):
        kwargs["holdout"] = parse_holdout(kwargs["holdout"])
    table = read_runs(data, columns, all_evals=True) if isinstance(data, str | Path) else data
    return fit_chain(table, ChainConfig(target=target, via=via, **kwargs))
