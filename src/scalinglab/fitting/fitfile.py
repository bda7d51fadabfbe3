"""Check a fit JSON read back from disk against its law before anything predicts from it.

A fit file is untrusted input: it may have been edited, truncated, or written for another law. Every
field that ``predict`` and ``plan`` use is checked here, and the first problem is reported in one line
naming the file and the field:

- ``law`` names a known law (``data-constrained`` and ``data_constrained`` alike);
- ``params`` has exactly the law's public parameters, each a finite number, in the law's range
  (decay exponents such as Chinchilla's α and β are ≥ 0: a negative one means loss *rises* with scale);
- ``theta`` (the optimisation-space vector predictions use) has the law's length, is finite, within the
  law's bounds, and agrees with ``params`` — so the numbers shown and the numbers used are the same;
- ``bootstrap``, when present: ``level`` in (0, 1), ``n`` ≥ 1, ``samples`` with one equal-length list of
  numbers per parameter, ``ci`` with a [lo, hi] pair per parameter;
- ``inputs``: [min, max] of positive finite numbers per column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from scalinglab.errors import InputError
from scalinglab.laws.base import Law

# theta and params are written from the same vector; they agree to float rounding of exp/log.
AGREE_RTOL = 1e-6
AGREE_ATOL = 1e-9
INPUT_COLUMNS = ("params", "tokens", "flops", "unique_tokens", "step", "lr")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:40] + "…"


def check_law_params(law: Law, params: Any, theta: Any, where: str) -> None:
    """``params`` and ``theta`` describe one valid parameter vector of ``law``; InputError otherwise."""
    if not isinstance(params, dict):
        raise InputError(f"{where}: 'params' must be an object of parameter values, got {type(params).__name__}")
    names = list(law.public_names)
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"{where}: 'params' lacks '{missing[0]}'; the {law.name} law has {len(names)} parameters "
                         f"({', '.join(names)})")
    extra = [n for n in params if n not in names]
    if extra:
        raise InputError(f"{where}: 'params' has '{extra[0]}', which the {law.name} law does not have "
                         f"(its {len(names)} parameters: {', '.join(names)})")
    for n in names:
        if not _finite(params[n]):
            raise InputError(f"{where}: params.{n} = {_show(params[n])} is not a finite number")
    for n in law.decay_exponents:
        if params[n] < 0:
            raise InputError(f"{where}: params.{n} = {params[n]:g} is negative: the loss would rise with scale, "
                             "which is not a fit of this law")
    if not isinstance(theta, list) or len(theta) != law.n_params:
        got = f"{len(theta)} values" if isinstance(theta, list) else type(theta).__name__
        raise InputError(f"{where}: 'theta' must be a list of {law.n_params} numbers for the {law.name} law, got {got}")
    for i, v in enumerate(theta):
        if not _finite(v):
            raise InputError(f"{where}: theta[{i}] = {_show(v)} is not a finite number")
    for i, ((lo, hi), v) in enumerate(zip(law.bounds(), theta, strict=True)):
        if (lo is not None and v < lo - 1e-9) or (hi is not None and v > hi + 1e-9):
            raise InputError(f"{where}: theta[{i}] ({law.param_names[i]}) = {v:g} is outside the law's range "
                             f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]")
    with np.errstate(all="ignore"):
        from_params = np.asarray(law.from_public(params), dtype=float)
    bad = ~np.isfinite(from_params)
    if bad.any():
        raise InputError(f"{where}: 'params' are outside the law's range ({law.param_names[int(np.flatnonzero(bad)[0])]} "
                         "is not finite; scales such as A, B and E must be > 0)")
    if not np.allclose(from_params, np.asarray(theta, dtype=float), rtol=AGREE_RTOL, atol=AGREE_ATOL):
        i = int(np.argmax(np.abs(from_params - np.asarray(theta, dtype=float))))
        raise InputError(f"{where}: 'params' and 'theta' disagree ({law.param_names[i]}: {from_params[i]:g} from "
                         f"params vs {theta[i]:g}); the file was edited or written for another law")


def check_bootstrap(boot: Any, names: list[str], where: str) -> None:
    """A bootstrap block that predict/plan can turn into intervals."""
    if not isinstance(boot, dict):
        raise InputError(f"{where}: 'bootstrap' must be an object or null, got {type(boot).__name__}")
    for key in ("n", "level", "ci", "samples"):
        if key not in boot:
            raise InputError(f"{where}: bootstrap lacks '{key}'")
    if not (isinstance(boot["n"], int) and not isinstance(boot["n"], bool) and boot["n"] >= 1):
        raise InputError(f"{where}: bootstrap.n = {_show(boot['n'])} must be an integer >= 1")
    if not (_finite(boot["level"]) and 0 < boot["level"] < 1):
        raise InputError(f"{where}: bootstrap.level = {_show(boot['level'])} must be a number between 0 and 1")
    failed = boot.get("failed", 0)
    if not (isinstance(failed, int) and not isinstance(failed, bool) and 0 <= failed <= boot["n"]):
        raise InputError(f"{where}: bootstrap.failed = {_show(failed)} must be an integer in [0, n]")
    samples = boot["samples"]
    if not isinstance(samples, dict):
        raise InputError(f"{where}: bootstrap.samples must be an object of per-parameter lists")
    lengths = set()
    for n in names:
        col = samples.get(n)
        if not isinstance(col, list) or not col:
            raise InputError(f"{where}: bootstrap.samples lacks a non-empty list for '{n}'")
        for i, v in enumerate(col):
            # null stands for a replicate whose value overflowed (written as JSON null); it is left out.
            if v is not None and not (_is_number(v) and not math.isnan(v)):
                raise InputError(f"{where}: bootstrap.samples.{n}[{i}] = {_show(v)} is not a number")
        lengths.add(len(col))
    extra = [k for k in samples if k not in names]
    if extra:
        raise InputError(f"{where}: bootstrap.samples has '{extra[0]}', which is not a parameter of the law")
    if len(lengths) > 1:
        raise InputError(f"{where}: bootstrap.samples lists have different lengths ({sorted(lengths)})")
    if lengths.pop() > boot["n"]:
        raise InputError(f"{where}: bootstrap.samples hold more replicates than bootstrap.n = {boot['n']}")
    ci = boot["ci"]
    if not isinstance(ci, dict):
        raise InputError(f"{where}: bootstrap.ci must be an object of [lo, hi] pairs")
    for n in names:
        pair = ci.get(n)
        if not (isinstance(pair, list) and len(pair) == 2 and all(v is None or _is_number(v) for v in pair)):
            raise InputError(f"{where}: bootstrap.ci.{n} must be a [lo, hi] pair of numbers, got {_show(pair)}")


def check_inputs(inputs: Any, where: str, law_inputs: tuple[str, ...] = ()) -> None:
    """``inputs``: {column: [min, max]} of the fitted data (predict reports extrapolation against max)."""
    if not isinstance(inputs, Mapping):
        raise InputError(f"{where}: 'inputs' must be an object of [min, max] pairs")
    allowed = tuple(dict.fromkeys((*INPUT_COLUMNS, *law_inputs)))
    for k, pair in inputs.items():
        if k not in allowed:
            raise InputError(f"{where}: inputs has unknown column '{k}' (expected one of {', '.join(allowed)})")
        if not (isinstance(pair, list) and len(pair) == 2 and all(_finite(v) and v > 0 for v in pair)
                and pair[0] <= pair[1]):
            raise InputError(f"{where}: inputs.{k} must be [min, max] with 0 < min <= max, got {_show(pair)}")


def check_fit_dict(data: Any, where: str) -> Law:
    """Validate a fit JSON document; returns its law. ``where`` names the file in messages."""
    from scalinglab.laws.registry import get_law

    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object written by `scalinglab fit --out`, got {type(data).__name__}")
    for key in ("law", "params", "theta"):
        if key not in data:
            raise InputError(f"{where}: missing field '{key}'; expected a fit written by `scalinglab fit --out`")
    if not isinstance(data["law"], str):
        raise InputError(f"{where}: 'law' must be a law name, got {_show(data['law'])}")
    try:
        law = get_law(data["law"])
    except InputError as exc:
        raise InputError(f"{where}: field 'law': {str(exc).removeprefix('--law: ')}") from None
    check_law_params(law, data["params"], data["theta"], where)
    if data.get("bootstrap") is not None:
        check_bootstrap(data["bootstrap"], list(law.public_names), where)
    check_inputs(data.get("inputs", {}), where, tuple(law.inputs))
    for key, kind in (("formula", str), ("diagnostics", dict), ("data_source", str), ("data_sha256", str)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise InputError(f"{where}: '{key}' must be a {kind.__name__}, got {type(data[key]).__name__}")
    for key in ("n_points", "starts"):
        if key in data and not (isinstance(data[key], int) and not isinstance(data[key], bool) and data[key] >= 0):
            raise InputError(f"{where}: '{key}' = {_show(data[key])} must be a non-negative integer")
    for key in ("objective", "huber_delta"):
        if key in data and data[key] is not None and not _is_number(data[key]):
            raise InputError(f"{where}: '{key}' = {_show(data[key])} must be a number")
    if data.get("holdout") is not None and not isinstance(data["holdout"], dict):
        raise InputError(f"{where}: 'holdout' must be an object or null")
    return law
