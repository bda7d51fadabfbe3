"""`scalinglab.fit(table, law=...)`: validate → multi-start fit → bootstrap → diagnostics → holdout."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.fitting.bootstrap import bootstrap, check_replicates, percentile_ci
from scalinglab.fitting.diagnostics import diagnose
from scalinglab.fitting.objective import HUBER_DELTA, HuberObjective, auto_delta, parse_delta
from scalinglab.fitting.optimize import distinct_optima, multistart
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.fitting.screen import SCREEN_ROWS, screening_objective
from scalinglab.fitting.validate import Holdout, parse_holdout, score, split
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law
from scalinglab.runs.io import read_runs
from scalinglab.runs.schema import validate

BOOT_EXTRA_STARTS = 3  # besides the full-data optimum, each replicate also starts from the next-best basins


@dataclass(frozen=True)
class FitConfig:
    law: str = "chinchilla"
    target: str = "loss"  # the column the law predicts (any metric column, e.g. acc:hellaswag)
    x: str = "loss"  # the column a law of one input (a link such as sigmoid) reads
    huber_delta: float | str = HUBER_DELTA  # or "auto": 1.345 × MAD of a first (δ = 1e-3) fit's residuals
    bootstrap: int = 0
    level: float = 0.95
    holdout: Holdout | None = None
    seed: int = 0
    jobs: int | None = None
    progress: bool = False

    def __post_init__(self):
        from scalinglab.errors import InputError

        object.__setattr__(self, "huber_delta", parse_delta(self.huber_delta))
        check_replicates(self.bootstrap)
        if not 0 < self.level < 1:
            raise InputError(f"--level: {self.level} must be between 0 and 1")
        if self.jobs is not None and self.jobs < 1:
            raise InputError(f"--jobs: {self.jobs} must be >= 1 (or left out for all cores)")


def _check_fitted(law: Law, theta: np.ndarray, source: str) -> None:
    """Refuse a best fit that is not a fit: non-finite, or a decay exponent below zero (loss rising with scale)."""
    from scalinglab.errors import InputError

    public = law.to_public(theta)
    if not np.all(np.isfinite(theta)) or not all(np.isfinite(v) for v in public.values()):
        raise InputError(f"{source}: the {law.name} fit did not converge to finite parameters ({public})")
    rising = [n for n in law.decay_exponents if public[n] < 0]
    if rising:
        n = rising[0]
        raise InputError(f"{source}: the best {law.name} fit has {n} = {public[n]:.3g} < 0, i.e. loss rising with "
                         "scale; these data do not follow the law (check the loss column and the units)")


def input_columns(law: Law, x: str = "loss") -> dict[str, str]:
    """Law input → table column: laws of one input read ``x`` from the column given by ``--x``."""
    return {c: (x if c == "x" else c) for c in law.inputs}


def _inputs(law: Law, table: pd.DataFrame, x: str = "loss") -> dict[str, np.ndarray]:
    return {c: table[col].to_numpy() for c, col in input_columns(law, x).items()}


def check_target(table: pd.DataFrame, target: str, source: str) -> None:
    """A constant target leaves nothing to fit (every law would be degenerate): say so."""
    y = table[target].to_numpy(dtype=float)
    if y.size > 1 and np.all(y == y[0]):
        raise InputError(f"{source}: column '{target}' is constant ({y[0]:g} in all {y.size} rows); nothing to fit")


def _sha256(table: pd.DataFrame, cols) -> str:
    """SHA-256 of the fitted columns: each name, then its values as little-endian float64 bytes.

    Linear and cheap at any size (formatting millions of floats as CSV text took longer than the fit).
    """
    digest = hashlib.sha256()
    for col in cols:
        digest.update(f"{col}\n".encode())
        values = table[col].to_numpy()
        if values.dtype.kind in "fiub":
            digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
        else:  # text inputs (the run of a loss-curve law): the distinct names, then each row's code
            codes, names = pd.factorize(table[col], sort=False)
            digest.update("\n".join(map(str, names)).encode())
            digest.update(np.ascontiguousarray(codes, dtype="<i8").tobytes())
    return digest.hexdigest()


def _screen(obj: HuberObjective, table: pd.DataFrame) -> HuberObjective:
    """The subsample the multi-start search runs on (strata: runs, along their steps); the polish sees all."""
    if obj.design is not None or len(table) <= SCREEN_ROWS:
        return screening_objective(obj)
    strata = pd.factorize(table["run"])[0] if "run" in table.columns else None
    order = np.argsort(table["step"].to_numpy(), kind="stable") if "step" in table.columns else None
    return screening_objective(obj, strata, order)


def _progress_bar(enabled: bool, total: int, label: str):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scalinglab.console import stderr_console

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=stderr_console, transient=True)
    return progress


def fit(data: pd.DataFrame | str | Path, law: str | None = None, config: FitConfig | None = None,
        columns=None, **kwargs) -> FitResult:
    """Fit ``law`` (default chinchilla) to a run table (or a file path) and return a :class:`FitResult`.

    Keyword arguments override :class:`FitConfig` fields, e.g. ``fit(t, "chinchilla", bootstrap=200)``, also
    those of a given ``config``; ``holdout`` may be given as text (``"largest-compute=3"``). A ``law`` that
    names another law than ``config.law`` is an :class:`InputError` (neither silently wins).
    """
    from scalinglab.errors import InputError

    if isinstance(kwargs.get("holdout"), str):
        kwargs["holdout"] = parse_holdout(kwargs["holdout"])
    if config is None:
        config = FitConfig(law=law or "chinchilla", **kwargs)
    else:
        if law is not None and get_law(law).name != get_law(config.law).name:
            raise InputError(f"fit: law {law!r} disagrees with config.law {config.law!r}; give one of them")
        config = replace(config, **kwargs)
    the_law = get_law(config.law)
    table = read_runs(data, columns) if isinstance(data, str | Path) else data
    source = str(table.attrs.get("source", data if isinstance(data, str | Path) else "table"))
    # The column the law predicts: --target, else the law's own ("loss"; "lr" / "batch_size" / "step" for
    # the hyperparameter laws).
    target = config.target if config.target != "loss" else the_law.target
    columns = input_columns(the_law, config.x)
    if target in columns.values():
        raise InputError(f"--target: '{target}' is also an input of the {the_law.name} law; choose another --x")
    needed = tuple(dict.fromkeys((*columns.values(), target)))
    table = validate(table, needed, source, min_points=the_law.n_params + 1, n_params=the_law.n_params,
                     positive=(target,))
    check_target(table, target, source)

    held = None
    if config.holdout:
        table, held = split(table, config.holdout, source)
        validate(table, needed, source, min_points=the_law.n_params + 1, n_params=the_law.n_params,
                 positive=(target,))

    x = the_law.prepare(_inputs(the_law, table, config.x))
    loss = table[target].to_numpy(dtype=float)
    bounds = the_law.bounds()
    bounds_arg = None if all(b == (None, None) for b in bounds) else bounds
    starts = the_law.init_grid()
    delta, auto = config.huber_delta, None
    if delta == "auto":  # first fit at the published δ, then δ from its residuals and a second fit
        first_obj = HuberObjective(the_law, x, loss, HUBER_DELTA)
        first = multistart(first_obj, starts, bounds=bounds_arg, screen=_screen(first_obj, table))
        residuals = the_law.log_predict(first.theta[None, :], x)[0] - np.log(loss)
        delta = auto_delta(residuals)
        auto = {"rule": "1.345 x normalised MAD of the residuals of a delta=1e-3 fit", "delta": delta,
                "first_fit_delta": HUBER_DELTA}
    obj = HuberObjective(the_law, x, loss, delta)
    best = multistart(obj, starts, bounds=bounds_arg, screen=_screen(obj, table))
    _check_fitted(the_law, best.theta, source)

    result = FitResult(
        law=the_law.name, formula=the_law.formula, params=the_law.to_public(best.theta),
        objective=best.objective, n_points=len(table), huber_delta=delta,
        theta=best.theta.tolist(), starts=best.starts, data_source=source,
        inputs={c: [float(table[c].min()), float(table[c].max())]
                for c in dict.fromkeys(("params", "tokens", "flops", *the_law.inputs))
                if c in table.columns and pd.api.types.is_numeric_dtype(table[c])},
        data_sha256=_sha256(table, needed), target=target, x=config.x if "x" in the_law.inputs else None,
    )

    samples = None
    if config.bootstrap:
        extra = distinct_optima(best.local_theta, best.local_f, BOOT_EXTRA_STARTS + 1, rtol=1e-3)
        boot_starts = np.vstack([best.theta[None, :], best.local_theta[extra]])
        groups = table["run"].to_numpy() if "run" in table.columns else np.arange(len(table))
        bar = _progress_bar(config.progress, config.bootstrap, "bootstrap")
        with bar as progress:
            task = progress.add_task("bootstrap", total=config.bootstrap) if progress else None
            theta_b, f_b = bootstrap(
                the_law.name, x, loss, delta, groups, boot_starts, bounds_arg, config.bootstrap,
                seed=config.seed, jobs=config.jobs,
                progress=(lambda k: progress.advance(task, k)) if progress else None,
            )
        ok = np.isfinite(f_b)
        public = [the_law.to_public(t) for t in theta_b[ok]]
        names = list(result.params)
        samples = np.array([[p[k] for k in names] for p in public])
        lo, hi = percentile_ci(samples, config.level)
        result.bootstrap = Bootstrap(
            n=int(config.bootstrap), level=config.level,
            ci={k: [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)},
            samples={k: samples[:, i].tolist() for i, k in enumerate(names)}, failed=int((~ok).sum()),
        )
        theta_samples = theta_b[ok]
    else:
        theta_samples = None

    x_diag, w_diag = x, None
    if obj.design is not None:  # JᵀJ over design points, each weighted by its rows: the same matrix
        d = obj.design
        x_diag = {k: v[d.index] for k, v in x.items()}
        w_diag = np.add.reduceat(d.counts, d.start[:-1]).astype(float)
    result.diagnostics = diagnose(the_law, best.theta, x_diag, {c: table[c].to_numpy() for c in ("params", "tokens", "flops")
                                                                if c in table.columns}, theta_samples, weights=w_diag)
    if auto is not None:
        result.diagnostics["huber_delta_auto"] = auto
    if held is not None:
        predicted = the_law.predict(result.params, _inputs(the_law, held, config.x))
        result.holdout = {"rule": f"{config.holdout.rule}={config.holdout.k}",
                          **score(predicted, held[target].to_numpy(dtype=float)),
                          "flops": held["flops"].tolist() if "flops" in held.columns else None}
    return result
