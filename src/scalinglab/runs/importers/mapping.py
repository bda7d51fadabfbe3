"""Apply a ``--columns`` map to an imported frame: names are renamed, numbers become constant columns.

An export of one run rarely records the model size: ``--columns params=190354176`` sets a column to a
constant, while ``--columns loss="eval/c4_en-validation/CrossEntropyLoss"`` renames as for any file.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from scalinglab.errors import InputError


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def apply_map(frame: pd.DataFrame, defaults: Mapping[str, str], columns: Mapping[str, str], source: str,
              run: str) -> pd.DataFrame:
    """Rename ``defaults`` then ``columns`` (which win), set numeric constants, add ``run`` if absent.

    Rows where every mapped measurement (canonical ``loss`` or a ``kind:name`` metric) is missing are
    dropped: exports interleave training steps that logged no evaluation.
    """
    mapping = {k: v for k, v in defaults.items() if v in frame.columns}
    constants = {}
    for key, src in columns.items():
        if src in frame.columns:
            mapping[key] = src
        elif (value := _number(src)) is not None:
            constants[key] = value
            mapping.pop(key, None)
        else:
            found = ", ".join(map(str, list(frame.columns)[:12]))
            raise InputError(f"{source}: --columns names column '{src}' which the file does not have (found: {found}, ...)")
    out = frame.rename(columns={src: key for key, src in mapping.items()})
    out = out.loc[:, ~out.columns.duplicated(keep="first")]
    for key, value in constants.items():
        out[key] = value
    if "run" not in out.columns:
        out["run"] = run
    measured = [k for k in mapping if k == "loss" or ":" in k]
    if measured:
        cells = out[measured]
        # A cell is missing when empty or NaN (files read as text keep empty cells as "").
        keep = (cells.notna() & (cells.astype(str).apply(lambda c: c.str.strip()) != "")).any(axis=1).to_numpy()
        out = out[keep]
        out.attrs["row_numbers"] = np.asarray(frame.attrs.get("row_numbers", np.arange(1, len(frame) + 1)))[keep]
    else:
        out.attrs["row_numbers"] = np.asarray(frame.attrs.get("row_numbers", np.arange(1, len(frame) + 1)))
    return out.reset_index(drop=True)
