"""scalinglab — measure small, predict big.

Train ladders of small models, fit scaling laws to them (or to runs you already have), forecast loss
and the compute-optimal size for a budget you cannot afford to test, and quantize checkpoints to see
what serving at low precision costs.

Public API (heavy modules load lazily, so ``import scalinglab`` stays fast):

    scalinglab.read_runs(path, columns=...)  -> pandas.DataFrame (canonical run table)
    scalinglab.fit(table, law="chinchilla")  -> FitResult
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "fit", "read_runs", "InputError"]

from scalinglab.errors import InputError


def __getattr__(name: str):
    if name == "fit":
        from scalinglab.fitting.api import fit

        return fit
    if name == "read_runs":
        from scalinglab.runs.io import read_runs

        return read_runs
    raise AttributeError(name)
