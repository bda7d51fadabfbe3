"""FitResult: the fit's JSON contract, written atomically, read back (and checked) for predict/plan."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab import __version__
from scalinglab.atomic import write_text_atomic
from scalinglab.jsonfile import read_json


@dataclass
class Bootstrap:
    n: int
    level: float
    ci: dict[str, list[float]]  # name → [lo, hi]
    samples: dict[str, list[float]]  # name → the n refitted values (for prediction intervals)
    failed: int = 0  # replicates whose refit did not converge (left out of the intervals)


@dataclass
class FitResult:
    law: str
    formula: str
    params: dict[str, float]
    objective: float
    n_points: int
    huber_delta: float
    theta: list[float]  # optimisation-space vector (law.param_names order)
    inputs: dict[str, list[float]] = field(default_factory=dict)  # column → [min, max] of the fitted data
    bootstrap: Bootstrap | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None
    starts: int = 0
    data_source: str = ""
    data_sha256: str = ""
    target: str = "loss"  # the column the law predicts
    x: str | None = None  # the input column of a law of one input (a link)
    scalinglab_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def save(self, path: str | Path) -> None:
        """Write JSON atomically: a crash mid-write never leaves a truncated fit."""
        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a fit JSON and check it against its law (:mod:`scalinglab.fitting.fitfile`)."""
        path = Path(path)
        return cls.from_dict(read_json(path, "fit JSON file", missing="fit file"), str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FitResult:
        """A fit from its parsed JSON, checked against its law; ``where`` names the file (or section) in errors."""
        from scalinglab.fitting.fitfile import check_fit_dict

        law = check_fit_dict(data, where)
        data = dict(data)
        boot = data.pop("bootstrap", None)
        known = {f for f in cls.__dataclass_fields__}
        # Fields predict and plan do not use may be absent from a hand-written file.
        defaults = {"formula": law.formula, "objective": math.nan, "n_points": 0, "huber_delta": math.nan}
        result = cls(**{**defaults, **{k: v for k, v in data.items() if k in known and v is not None}})
        result.law = law.name
        result.params = {k: float(result.params[k]) for k in law.public_names}
        result.theta = [float(v) for v in result.theta]
        if boot:
            # A replicate value that overflowed was written as null: NaN here, left out of the intervals.
            samples = {k: [math.nan if v is None else float(v) for v in boot["samples"][k]] for k in law.public_names}
            result.bootstrap = Bootstrap(n=boot["n"], level=float(boot["level"]), ci=boot["ci"], samples=samples,
                                         failed=boot.get("failed", 0))
        return result

    def samples_matrix(self) -> np.ndarray | None:
        """Bootstrap samples as (n, P) in ``params`` order, or None without a bootstrap.

        A replicate value that overflowed is written to JSON as null; it reads back as NaN (callers take
        NaN-aware percentiles), not as None, which numpy cannot take the log of."""
        if not self.bootstrap or not self.bootstrap.samples:
            return None
        return np.column_stack([np.array([np.nan if v is None else v for v in self.bootstrap.samples[k]], dtype=float)
                                for k in self.params])


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
