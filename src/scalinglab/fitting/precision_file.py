"""The fit file of a loss law plus the PTQ-degradation law, written by ``scalinglab fit --law ptq``.

With a base law the file **is** that law's fit (every key of ``scalinglab fit --out``, so any reader of fit
files — predict, plan, report — still reads L(N, D)) with one more key, ``ptq``:

    {"law": "chinchilla", "params": {...}, "theta": [...], "bootstrap": {...}, ...,
     "ptq": {"law": "ptq", "params": {"C_T": …, "gamma_D": …, "gamma_N": …, "gamma_post": …}, "theta": [...],
             "bootstrap": {...}, "inputs": {"params": [lo, hi], "tokens": [lo, hi], "bits": [lo, hi]},
             "pairing": "same-runs" | "independent" | null,
             "evaluations": {"runs": …, "rows": …, "excluded_nonpositive": …, "method": …,
                             "bits": [lo, hi], "tokens_per_param": [lo, hi],
                             "scatter": {"ptq_log_sd": …, "base_log_sd": … | null}},
             "holdout": {...} | null}}

Without a base law the file is the ``ptq`` section alone (top-level ``law`` = ``ptq``). Read back, each part is
checked as a fit file (:mod:`scalinglab.fitting.fitfile`) and the section's own keys here; a tampered value
is one line naming the file, the section and the field. ``pairing`` says how replicate i of L and replicate i
of δ relate: refitted on the same resampled runs, or drawn from two independent bootstraps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.atomic import write_text_atomic
from scalinglab.errors import InputError
from scalinglab.fitting.result import FitResult, _plain
from scalinglab.jsonfile import read_json
from scalinglab.laws.base import Law
from scalinglab.laws.ptq import BITS_RANGE
from scalinglab.laws.registry import get_law

SECTION = "ptq"
PAIRINGS = ("same-runs", "independent")


def check_base_law(law: Law, where: str) -> None:
    if set(law.inputs) != {"params", "tokens"} or law.target != "loss":
        raise InputError(f"{where}: the {law.name} law is not a loss law of params and tokens; the loss after "
                         "quantization adds δ_PTQ to a law L(N, D) such as chinchilla")


@dataclass
class PrecisionFit:
    base: FitResult | None  # L(N, D): the float loss
    ptq: FitResult  # δ_PTQ(N, D, P)
    pairing: str | None = None  # how base and ptq bootstrap replicates pair up (see the module docstring)
    evaluations: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None

    def section(self) -> dict[str, Any]:
        return {**self.ptq.to_dict(), "pairing": self.pairing, "evaluations": _plain(self.evaluations),
                "holdout": _plain(self.holdout)}

    def to_dict(self) -> dict[str, Any]:
        if self.base is None:
            return self.section()
        return {**self.base.to_dict(), SECTION: self.section()}

    def save(self, path: str | Path) -> None:
        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PrecisionFit:
        path = Path(path)
        return from_dict(read_json(path, "fit JSON file", missing="fit file"), str(path))


def has_ptq(data: Any) -> bool:
    return isinstance(data, dict) and (data.get("law") == SECTION or SECTION in data)


def _pair(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                        and math.isfinite(x) and x > 0 for x in v) and v[0] <= v[1])


def _check_section(sec: dict, where: str) -> None:
    pairing = sec.get("pairing")
    if pairing is not None and pairing not in PAIRINGS:
        raise InputError(f"{where}: 'pairing' = {pairing!r} must be one of {', '.join(PAIRINGS)} or null")
    ev = sec.get("evaluations", {})
    if not isinstance(ev, dict):
        raise InputError(f"{where}: 'evaluations' must be an object")
    for key in ("bits", "tokens_per_param"):
        if key in ev and not _pair(ev[key]):
            raise InputError(f"{where}: evaluations.{key} must be [min, max] with 0 < min <= max, got {ev[key]!r}")
    if "bits" in ev and not (BITS_RANGE[0] <= ev["bits"][0] and ev["bits"][1] <= BITS_RANGE[1]):
        raise InputError(f"{where}: evaluations.bits {ev['bits']} is outside {BITS_RANGE[0]:g}…{BITS_RANGE[1]:g} bits")
    for key in ("runs", "rows", "excluded_nonpositive"):
        if key in ev and not (isinstance(ev[key], int) and not isinstance(ev[key], bool) and ev[key] >= 0):
            raise InputError(f"{where}: evaluations.{key} = {ev[key]!r} must be a non-negative integer")
    scatter = ev.get("scatter", {})
    if not isinstance(scatter, dict):
        raise InputError(f"{where}: evaluations.scatter must be an object")
    for key in ("ptq_log_sd", "base_log_sd"):
        v = scatter.get(key)
        if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
            raise InputError(f"{where}: evaluations.scatter.{key} = {v!r} must be a number >= 0 or null")
    if sec.get("holdout") is not None and not isinstance(sec["holdout"], dict):
        raise InputError(f"{where}: 'holdout' must be an object or null")


def from_dict(data: Any, where: str) -> PrecisionFit:
    """Validate a fit document with a ``ptq`` section (or a ptq fit alone) → :class:`PrecisionFit`."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object written by `scalinglab fit --out`, got {type(data).__name__}")
    if data.get("law") == SECTION:
        base, sec, sec_where = None, data, where
    else:
        if SECTION not in data:
            raise InputError(f"{where}: no '{SECTION}' section; fit one with `scalinglab fit QUANT --law ptq --base "
                             f"{Path(where).name} --out FILE`")
        base = FitResult.from_dict({k: v for k, v in data.items() if k != SECTION}, where)
        check_base_law(get_law(base.law), where)
        sec, sec_where = data[SECTION], f"{where}: section '{SECTION}'"
        if not isinstance(sec, dict):
            raise InputError(f"{sec_where}: expected an object, got {type(sec).__name__}")
    ptq = FitResult.from_dict({k: v for k, v in sec.items() if k not in ("pairing", "evaluations", "holdout")},
                              sec_where)
    if ptq.law != SECTION:
        raise InputError(f"{sec_where}: 'law' is {ptq.law!r}; the section holds a ptq fit")
    _check_section(sec, sec_where)
    pairing = sec.get("pairing")
    if pairing == "same-runs" and base is not None:
        nb = base.samples_matrix()
        nq = ptq.samples_matrix()
        if nb is None or nq is None or len(nb) != len(nq):
            raise InputError(f"{sec_where}: 'pairing' is same-runs but the base and ptq fits do not hold the same "
                             "number of bootstrap replicates")
    return PrecisionFit(base=base, ptq=ptq, pairing=pairing, evaluations=dict(sec.get("evaluations") or {}),
                        holdout=sec.get("holdout"))
