"""hp.json: the hyperparameter fit written by `scalinglab hparams`, validated when read back.

The file is untrusted input: every field :mod:`scalinglab.planning.hparams` uses is checked for type,
finiteness and sign, and the first problem is reported in one line naming the file and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.fitting.result import write_text_atomic
from scalinglab.jsonfile import read_json

__all__ = ["save_hparams", "load_hparams", "KIND"]

KIND = "scalinglab-hparams"
LAW_KEYS = ("optimal_lr", "optimal_batch")


def save_hparams(data: dict, path: str | Path) -> None:
    write_text_atomic(Path(path), json.dumps(data, indent=2) + "\n")


def _number(value, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    if positive and not value > 0:
        raise InputError(f"{where}: expected a number > 0, got {value!r}")
    return float(value)


def _check_fit(fit, where: str, law: str) -> None:
    if not isinstance(fit, dict):
        raise InputError(f"{where}: expected an object (a fit), got {type(fit).__name__}")
    if not str(fit.get("law", "")).startswith(law):
        raise InputError(f"{where}.law: expected '{law}', got {fit.get('law')!r}")
    for key in ("params", "inputs"):
        if not isinstance(fit.get(key), dict):
            raise InputError(f"{where}.{key}: expected an object")
    if not isinstance(fit.get("theta"), list):
        raise InputError(f"{where}.theta: expected a list of numbers")
    for i, v in enumerate(fit["theta"]):
        _number(v, f"{where}.theta[{i}]")
    for k, v in fit["params"].items():
        _number(v, f"{where}.params.{k}")
    for k, v in fit["inputs"].items():
        if not (isinstance(v, list) and len(v) == 2):
            raise InputError(f"{where}.inputs.{k}: expected [min, max]")
        for j, u in enumerate(v):
            _number(u, f"{where}.inputs.{k}[{j}]", positive=True)
    boot = fit.get("bootstrap")
    if boot is not None:
        if not isinstance(boot, dict) or not isinstance(boot.get("samples"), dict):
            raise InputError(f"{where}.bootstrap.samples: expected an object of sample lists")
        _number(boot.get("level"), f"{where}.bootstrap.level", positive=True)
        lengths = set()
        for k in fit["params"]:
            col = boot["samples"].get(k)
            if not isinstance(col, list) or not col:
                raise InputError(f"{where}.bootstrap.samples.{k}: expected a non-empty list of numbers")
            for j, v in enumerate(col):
                _number(v, f"{where}.bootstrap.samples.{k}[{j}]")
            lengths.add(len(col))
        if len(lengths) > 1:
            raise InputError(f"{where}.bootstrap.samples: the parameters have different numbers of samples")


def load_hparams(path: str | Path) -> dict:
    """Read and validate an hp.json; returns the dict."""
    path = Path(path)
    data = read_json(path, "JSON file", missing="hyperparameter file")
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise InputError(f"{path}: not a hyperparameter fit (expected \"kind\": \"{KIND}\"; "
                         "write one with `scalinglab hparams DATA --out hp.json`)")
    if data.get("seq_len") is not None:
        _number(data["seq_len"], f"{path}: seq_len", positive=True)
    for key in LAW_KEYS:
        if data.get(key) is not None:
            _check_fit(data[key], f"{path}: {key}", key)
    bound = data.get("batch_bound")
    if bound is not None:
        if not (isinstance(bound, dict) and len(bound) == 1 and next(iter(bound)) in ("at_most", "at_least")):
            raise InputError(f"{path}: batch_bound: expected {{\"at_most\": B}} or {{\"at_least\": B}}")
        _number(next(iter(bound.values())), f"{path}: batch_bound", positive=True)
    trade = data.get("tradeoff")
    if trade is not None:
        if not isinstance(trade, dict):
            raise InputError(f"{path}: tradeoff: expected an object")
        if trade.get("batch_tradeoff") is not None:
            _check_fit(trade["batch_tradeoff"], f"{path}: tradeoff.batch_tradeoff", "batch_tradeoff")
    crit = data.get("critical_batch")
    if crit is not None:
        if not isinstance(crit, dict) or crit.get("better") not in ("params", "tokens") \
                or not isinstance(crit.get("fits"), dict) or crit["better"] not in crit["fits"]:
            raise InputError(f"{path}: critical_batch: expected fits over params/tokens and 'better' naming one")
        for k, v in crit["fits"].items():
            _check_fit(v, f"{path}: critical_batch.fits.{k}", "critical_batch")
    if all(data.get(k) is None for k in LAW_KEYS) and (trade is None or trade.get("batch_tradeoff") is None):
        raise InputError(f"{path}: holds no fitted law (optimal_lr, optimal_batch or tradeoff.batch_tradeoff)")
    return data
