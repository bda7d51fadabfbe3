"""`scalinglab.fit(table, law=...)`: validate → multi-start fit → bootstrap → diagnostics → holdout."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.fitting.bootstrap import bootstrap, percentile_ci
from scalinglab.fitting.diagnostics import diagnose
from scalinglab.fitting.objective import HUBER_DELTA, HuberObjective
from scalinglab.fitting.optimize import distinct_optima, multistart
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.fitting.validate import Holdout, parse_holdout, score, split
from scalinglab.laws.base import Law
from scalinglab.laws.registry import get_law
from scalinglab.runs.io import read_runs
from scalinglab.runs.schema import validate

BOOT_EXTRA_STARTS = 3  # besides the full-data optimum, each replicate also starts from the next-best basins


@dataclass(frozen=True)
class FitConfig:
    law: str = "chinchilla"
    huber_delta: float = HUBER_DELTA
    bootstrap: int = 0
    level: float = 0.95
    holdout: Holdout | None = None
    seed: int = 0
    jobs: int | None = None
    progress: bool = False

    def __post_init__(self):
        from scalinglab.errors import InputError

        if not self.huber_delta > 0:
            raise InputError(f"--huber-delta: {self.huber_delta} must be > 0")
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap: {self.bootstrap} must be >= 0")
        if not 0 < self.level < 1:
            raise InputError(f"--level: {self.level} must be between 0 and 1")


def _inputs(law: Law, table: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: table[c].to_numpy() for c in law.inputs}


def _require_positive(table: pd.DataFrame, col: str, source: str) -> None:
    """The fitted column is compared in log space: every value must be > 0."""
    from scalinglab.errors import InputError

    bad = np.flatnonzero(~(table[col].to_numpy(dtype=float) > 0))
    if bad.size:
        rows = np.asarray(table.attrs.get("row_numbers", np.arange(1, len(table) + 1)))
        raise InputError(f"{source}: row {int(rows[bad[0]])}, field '{col}': {table[col].iloc[bad[0]]!r} must be > 0")


def _sha256(table: pd.DataFrame, cols) -> str:
    return hashlib.sha256(table[list(cols)].to_csv(index=False).encode()).hexdigest()


def _progress_bar(enabled: bool, total: int, label: str):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scalinglab.console import stderr_console

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=stderr_console, transient=True)
    return progress


def fit(data: pd.DataFrame | str | Path, law: str = "chinchilla", config: FitConfig | None = None,
        columns=None, **kwargs) -> FitResult:
    """Fit ``law`` to a run table (or a file path) and return a :class:`FitResult`.

    Keyword arguments override :class:`FitConfig` fields, e.g. ``fit(t, "chinchilla", bootstrap=200)``;
    ``holdout`` may be given as text (``"largest-compute=3"``).
    """
    if isinstance(kwargs.get("holdout"), str):
        kwargs["holdout"] = parse_holdout(kwargs["holdout"])
    config = config or FitConfig(law=law, **kwargs)
    the_law = get_law(config.law)
    table = read_runs(data, columns) if isinstance(data, str | Path) else data
    source = str(table.attrs.get("source", data if isinstance(data, str | Path) else "table"))
    target = the_law.target  # "loss", or e.g. "lr" / "batch_size" / "step" for hyperparameter laws
    needed = (*the_law.inputs, target)
    table = validate(table, needed, source, min_points=the_law.n_params + 1)
    _require_positive(table, target, source)

    held = None
    if config.holdout:
        table, held = split(table, config.holdout, source)
        validate(table, needed, source, min_points=the_law.n_params + 1)

    x = the_law.prepare(_inputs(the_law, table))
    loss = table[target].to_numpy(dtype=float)
    obj = HuberObjective(the_law, x, loss, config.huber_delta)
    bounds = the_law.bounds()
    bounds_arg = None if all(b == (None, None) for b in bounds) else bounds
    starts = the_law.init_grid()
    best = multistart(obj, starts, bounds=bounds_arg)

    result = FitResult(
        law=the_law.name, formula=the_law.formula, params=the_law.to_public(best.theta),
        objective=best.objective, n_points=len(table), huber_delta=config.huber_delta,
        theta=best.theta.tolist(), starts=best.starts, data_source=source,
        inputs={c: [float(table[c].min()), float(table[c].max())]
                for c in dict.fromkeys(("params", "tokens", "flops", *the_law.inputs))
                if c in table.columns and pd.api.types.is_numeric_dtype(table[c])},
        data_sha256=_sha256(table, needed),
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
                the_law.name, x, loss, config.huber_delta, groups, boot_starts, bounds_arg, config.bootstrap,
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

    result.diagnostics = diagnose(the_law, best.theta, x, {c: table[c].to_numpy() for c in ("params", "tokens", "flops")
                                                           if c in table.columns}, theta_samples)
    if held is not None:
        predicted = the_law.predict(result.params, _inputs(the_law, held))
        result.holdout = {"rule": f"{config.holdout.rule}={config.holdout.k}", **score(predicted, held[target].to_numpy()),
                          "flops": held["flops"].tolist() if "flops" in held.columns else None}
    return result
