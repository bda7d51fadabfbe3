"""Weights & Biases CSV exports: one row per logged step, columns named as the training code logged them.

    _step, eval/c4_en-validation/CrossEntropyLoss, eval/downstream_bpb/hellaswag_val_rc_5shot_bpb,
    throughput/total_tokens, optim/learning_rate_group0, ...

A file is recognised by its ``_step`` column. ``_step`` becomes ``step``, ``throughput/total_tokens``
``tokens`` and ``optim/learning_rate_group0`` ``lr`` unless ``--columns`` says otherwise; every other
column passes through under its own name, to be mapped with ``--columns`` like any file
(``loss="eval/c4_en-validation/CrossEntropyLoss",task_loss:hellaswag="eval/downstream_bpb/hellaswag_val_rc_5shot_bpb"``).
An export holds one run: its name is the file's stem, and ``--columns params=190354176`` gives the
model size the export does not record.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from scalinglab.runs.importers.mapping import apply_map

STEP_COLUMN = "_step"
DEFAULTS = {"step": "_step", "tokens": "throughput/total_tokens", "lr": "optim/learning_rate_group0"}


def is_wandb_export(frame: pd.DataFrame) -> bool:
    return STEP_COLUMN in frame.columns


def from_wandb(frame: pd.DataFrame, columns: Mapping[str, str], source: str, run: str) -> pd.DataFrame:
    """A W&B export (already read as a frame) → a frame with canonical names, ready for canonicalize()."""
    return apply_map(frame, DEFAULTS, columns, source, run)
