"""ChainResult: a fitted (N, D) → via → target chain as JSON, validated when read back, and its forecasts.

    {"kind": "chain", "target": "acc:hellaswag", "via": "task_loss:hellaswag", "law": "chinchilla",
     "link": "sigmoid", "step1": FIT, "step2": FIT, "baseline": FIT | null, "holdout": {...} | null, ...}

Each FIT is a fit result (the same keys as ``scalinglab fit --out``). With a bootstrap, ``step1`` and
``step2`` hold the same number of samples, replicate i of one paired with replicate i of the other
(both refitted on the same resampled runs): a forecast pushes each step-1 replicate's prediction through
the step-2 replicate of the same index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab import __version__
from scalinglab.errors import InputError
from scalinglab.fitting.result import Bootstrap, FitResult, _plain, write_text_atomic
from scalinglab.jsonfile import read_json
from scalinglab.laws.registry import get_law

KIND = "chain"


@dataclass
class ChainResult:
    target: str
    via: str
    law: str
    link: str
    step1: FitResult
    step2: FitResult
    baseline: FitResult | None = None
    baseline_complement: bool = False  # the baseline was fitted to 1 − target (an accuracy rising with compute)
    skip_fraction: float = 0.0
    runs: int = 0
    holdout: dict[str, Any] | None = None
    data_source: str = ""
    untrained_rows: int = 0  # evaluations at D = 0 (the model before training) left out of both steps
    scalinglab_version: str = __version__

    # -- forecasts --------------------------------------------------------------------------------------
    def predict(self, inputs: Mapping[str, float]) -> dict:
        """via and target at ``inputs`` ({"params": N, "tokens": D}), with intervals when bootstrapped."""
        law, link = get_law(self.law), get_law(self.link)
        missing = [c for c in law.inputs if c not in inputs]
        if missing:
            raise InputError(f"predict: the chain's step 1 ({self.law}) needs --{missing[0].replace('_', '-')}")
        for k, v in inputs.items():
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise InputError(f"predict: --{k.replace('_', '-')} must be a number > 0 (got {v})")
        x = law.prepare({c: np.atleast_1d(float(inputs[c])) for c in law.inputs})
        via = float(np.exp(law.log_predict(np.asarray(self.step1.theta, float)[None], x))[0, 0])
        value = float(link.predict(self.step2.params, {"x": np.array([via])})[0])
        out = {"inputs": {k: float(v) for k, v in inputs.items()},
               "via": {"column": self.via, "value": via},
               "target": {"column": self.target, "value": value}}
        t1, t2 = _theta_samples(law, self.step1), _theta_samples(link, self.step2)
        if t1 is not None and t2 is not None:
            level = self.step1.bootstrap.level
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                via_b = np.exp(law.log_predict(t1, x))[:, 0]  # (B,)
                target_b = np.exp(link.log_predict(t2, link.prepare({"x": via_b[:, None]})))[:, 0]
                link_only = np.exp(link.log_predict(t2, link.prepare({"x": np.array([via])})))[:, 0]
            out["via"]["interval"] = _interval(via_b, level)
            out["target"]["interval"] = _interval(target_b, level)
            out["target"]["link_only_interval"] = _interval(link_only, level)  # step 2's uncertainty alone
            out["level"] = level
            out["replicates"] = int(np.isfinite(target_b).sum())
        if self.baseline is not None:
            flip = (lambda v: 1.0 - v) if self.baseline_complement else (lambda v: v)
            base = {"column": self.target, "law": self.law, "fitted": f"1 - {self.target}" if self.baseline_complement
                    else self.target, "value": float(flip(np.exp(law.log_predict(np.asarray(self.baseline.theta, float)[None], x))[0, 0]))}
            tb = _theta_samples(law, self.baseline)
            if tb is not None:
                with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                    boot = flip(np.exp(law.log_predict(tb, x))[:, 0])
                base["interval"] = sorted(_interval(boot, self.baseline.bootstrap.level))
            out["baseline"] = base
        fitted = self.step1.inputs
        out["extrapolation"] = {k: float(inputs[k] / fitted[k][1]) for k in inputs if k in fitted}
        return out

    # -- JSON ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain({"kind": KIND, "target": self.target, "via": self.via, "law": self.law, "link": self.link,
                       "skip_fraction": self.skip_fraction, "runs": self.runs, "data_source": self.data_source,
                       "step1": self.step1.to_dict(), "step2": self.step2.to_dict(),
                       "baseline": self.baseline.to_dict() if self.baseline else None,
                       "baseline_complement": self.baseline_complement,
                       "holdout": self.holdout, "untrained_rows": self.untrained_rows,
                       "scalinglab_version": self.scalinglab_version})

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ChainResult:
        path = Path(path)
        data = _read_json(path)
        return from_dict(data, str(path))


def _interval(samples: np.ndarray, level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _theta_samples(law, fit: FitResult) -> np.ndarray | None:
    samples = fit.samples_matrix()
    if samples is None or len(samples) == 0:
        return None
    names = list(fit.params)
    with np.errstate(divide="ignore", invalid="ignore"):  # a replicate may put a coefficient at 0: log → −inf
        return np.array([law.from_public(dict(zip(names, row, strict=True))) for row in samples])


def _read_json(path: Path) -> dict:
    data = read_json(path, "JSON file", missing="file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def is_chain_file(path: str | Path) -> bool:
    """True when ``path`` holds a chain (``"kind": "chain"``); fit files and unreadable files are False."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: {value!r} is not a finite number")
    return float(value)


def _fit_from_dict(d, where: str, law_name: str, target: str, samples_n: int | None = None) -> FitResult:
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a fit object")
    for key in ("law", "params", "theta"):
        if key not in d:
            raise InputError(f"{where}: missing field '{key}'")
    if d["law"] != law_name:
        raise InputError(f"{where}: law '{d['law']}' does not match the chain's '{law_name}'")
    law = get_law(law_name)
    params, theta = d["params"], d["theta"]
    if not isinstance(params, dict) or list(params) != list(law.public_names):
        raise InputError(f"{where}.params: expected the {law_name} parameters {', '.join(law.public_names)}")
    if not isinstance(theta, list) or len(theta) != law.n_params:
        raise InputError(f"{where}.theta: expected {law.n_params} numbers")
    for k, v in params.items():
        _number(v, f"{where}.params.{k}")
    for i, v in enumerate(theta):
        _number(v, f"{where}.theta[{i}]")
    if d.get("target", target) != target:
        raise InputError(f"{where}.target: '{d.get('target')}' does not match the chain's '{target}'")
    inputs = d.get("inputs", {})
    if not isinstance(inputs, dict) or not all(isinstance(v, list) and len(v) == 2 for v in inputs.values()):
        raise InputError(f"{where}.inputs: expected column → [min, max]")
    boot = d.get("bootstrap")
    known = {f for f in FitResult.__dataclass_fields__} - {"bootstrap"}
    fit = FitResult(**{k: v for k, v in d.items() if k in known})
    if boot is not None:
        if not isinstance(boot, dict) or not isinstance(boot.get("samples"), dict):
            raise InputError(f"{where}.bootstrap: expected an object with 'samples'")
        level = _number(boot.get("level"), f"{where}.bootstrap.level")
        if not 0 < level < 1:
            raise InputError(f"{where}.bootstrap.level: {level} must be between 0 and 1")
        samples = boot["samples"]
        if list(samples) != list(law.public_names):
            raise InputError(f"{where}.bootstrap.samples: expected the {law_name} parameters")
        lengths = {len(v) if isinstance(v, list) else -1 for v in samples.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InputError(f"{where}.bootstrap.samples: every parameter needs a list of the same length")
        if samples_n is not None and lengths != {samples_n}:
            raise InputError(f"{where}.bootstrap.samples: {lengths.pop()} replicates, but step 1 has {samples_n}; "
                             "the steps' replicates must be paired")
        for k, v in samples.items():
            if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in v):
                raise InputError(f"{where}.bootstrap.samples.{k}: expected numbers")
        fit.bootstrap = Bootstrap(n=int(_number(boot.get("n", 0), f"{where}.bootstrap.n")), level=level,
                                  ci=boot.get("ci") or {}, samples=samples, failed=int(boot.get("failed", 0) or 0))
    return fit


def from_dict(data: dict, where: str) -> ChainResult:
    """A ChainResult from parsed JSON, checking every field a forecast reads; bad input names the field."""
    if data.get("kind") != KIND:
        raise InputError(f"{where}: not a chain file (expected \"kind\": \"chain\"; write one with `scalinglab chain --out`)")
    for key in ("target", "via", "law", "link", "step1", "step2"):
        if key not in data:
            raise InputError(f"{where}: missing field '{key}'")
    for key in ("target", "via", "law", "link"):
        if not isinstance(data[key], str) or not data[key]:
            raise InputError(f"{where}.{key}: expected a non-empty string")
    try:
        law, link = get_law(data["law"]), get_law(data["link"])
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if link.inputs != ("x",) or "x" in law.inputs:
        raise InputError(f"{where}: step 1 must be a law of (N, D) and step 2 a law of one input")
    step1 = _fit_from_dict(data["step1"], f"{where}: step1", data["law"], data["via"])
    n1 = len(next(iter(step1.bootstrap.samples.values()))) if step1.bootstrap else None
    step2 = _fit_from_dict(data["step2"], f"{where}: step2", data["link"], data["target"], samples_n=n1)
    if (step1.bootstrap is None) != (step2.bootstrap is None):
        raise InputError(f"{where}: only one of the two steps carries a bootstrap; both or neither must")
    baseline = None
    if data.get("baseline") is not None:
        baseline = _fit_from_dict(data["baseline"], f"{where}: baseline", data["law"], "baseline_target")
    holdout = data.get("holdout")
    if holdout is not None and not isinstance(holdout, dict):
        raise InputError(f"{where}.holdout: expected an object or null")
    return ChainResult(target=data["target"], via=data["via"], law=data["law"], link=data["link"], step1=step1,
                       step2=step2, baseline=baseline, baseline_complement=data.get("baseline_complement") is True,
                       skip_fraction=float(data.get("skip_fraction", 0.0) or 0.0),
                       runs=int(data.get("runs", 0) or 0), holdout=holdout, data_source=str(data.get("data_source", "")),
                       untrained_rows=_count(data.get("untrained_rows", 0), f"{where}.untrained_rows"),
                       scalinglab_version=str(data.get("scalinglab_version", "")))


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{where}: {value!r}, expected a count >= 0")
    return value


__all__ = ["ChainResult", "from_dict", "is_chain_file"]
