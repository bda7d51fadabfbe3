"""Held-out extrapolation check: fit on small compute, score the largest.

A law that fits well can still extrapolate badly; the honest test is to hold out the K
largest-compute points, fit on the rest, and report the relative error of the predicted loss there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scalinglab.errors import InputError


@dataclass(frozen=True)
class Holdout:
    rule: str  # "largest-compute"
    k: int


def parse_holdout(text: str | None) -> Holdout | None:
    """``largest-compute=K`` → Holdout; None or '' → no holdout."""
    if not text:
        return None
    m = re.fullmatch(r"\s*largest-compute\s*=\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1:
        raise InputError(f"--holdout: '{text}' is not of the form largest-compute=K with K >= 1")
    return Holdout("largest-compute", int(m.group(1)))


def split(table: pd.DataFrame, holdout: Holdout, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit part, held-out part): the K rows of largest compute are held out."""
    if "flops" not in table.columns:
        raise InputError(f"{source}: --holdout largest-compute needs compute; give 'flops' or 'params' and 'tokens'")
    if holdout.k >= len(table):
        raise InputError(f"--holdout: K={holdout.k} leaves no rows to fit ({len(table)} rows)")
    order = np.argsort(table["flops"].to_numpy(), kind="stable")
    held = order[-holdout.k :]
    mask = np.zeros(len(table), dtype=bool)
    mask[held] = True
    fit_part, held_part = table[~mask].copy(), table[mask].copy()
    fit_part.attrs, held_part.attrs = dict(table.attrs), dict(table.attrs)
    rows = np.asarray(table.attrs.get("row_numbers", np.arange(1, len(table) + 1)))  # in-memory tables: 1…n
    fit_part.attrs["row_numbers"] = rows[~mask]
    held_part.attrs["row_numbers"] = rows[mask]
    return fit_part, held_part


def score(predicted: np.ndarray, actual: np.ndarray) -> dict:
    rel = (predicted - actual) / actual
    return {
        "predicted": predicted.tolist(),
        "actual": actual.tolist(),
        "relative_error": rel.tolist(),
        "mean_abs_relative_error": float(np.mean(np.abs(rel))),
        "max_abs_relative_error": float(np.max(np.abs(rel))),
    }
