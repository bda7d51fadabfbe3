"""FitResult: the fit's JSON contract (DESIGN §3), written atomically, read back for predict/plan."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab import __version__
from scalinglab.errors import InputError


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
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no such fit file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a fit JSON file ({exc})") from None
        for key in ("law", "params", "theta"):
            if key not in data:
                raise InputError(f"{path}: missing field '{key}'; expected a fit written by `scalinglab fit --out`")
        boot = data.pop("bootstrap", None)
        known = {f for f in cls.__dataclass_fields__}
        result = cls(**{k: v for k, v in data.items() if k in known})
        result.bootstrap = Bootstrap(**boot) if boot else None
        return result

    def samples_matrix(self) -> np.ndarray | None:
        """Bootstrap samples as (n, P) in ``params`` order, or None without a bootstrap."""
        if not self.bootstrap or not self.bootstrap.samples:
            return None
        return np.column_stack([self.bootstrap.samples[k] for k in self.params])


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


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
