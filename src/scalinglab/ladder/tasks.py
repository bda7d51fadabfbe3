"""Multiple-choice tasks scored the way lm-evaluation-harness scores them ("ranked classification").

Task file: JSON Lines, one item per line, ``{"context": "...", "choices": ["...", "..."], "gold": i}``.
Each choice is scored by the log-likelihood of its tokens given the context,

    ll_j = Σ_t log p(choice_j[t] | context, choice_j[:t])

and the item is answered by ``argmax_j ll_j`` (``acc``) or by ``argmax_j ll_j / bytes(choice_j)``
(``acc_norm``, the length-normalised accuracy of Gao et al.'s harness and of OLMo's ``len_norm``).
The **task loss** is the bits per byte of the correct continuation, averaged over items,

    bpb = mean_items( −ll_gold / (ln 2 · bytes(choice_gold)) )

(Bhagia et al. 2024, §2: the intermediate quantity of their chain). Every (item, choice) pair is one row
of a batch: many items are scored per forward pass, with no per-item Python loop around the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scalinglab.errors import InputError
from scalinglab.jsonl import iter_objects

MIN_CHOICES = 2


@dataclass(frozen=True)
class TaskItem:
    context: str
    choices: tuple[str, ...]
    gold: int


def load_task_file(path: str | Path) -> list[TaskItem]:
    """Read and check a task file; a bad item is one line naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such task file")
    items = []
    for lineno, obj in iter_objects(path):
        where = f"{path}: line {lineno}"
        context, choices, gold = obj.get("context"), obj.get("choices"), obj.get("gold")
        if not isinstance(context, str):
            raise InputError(f"{where}, field 'context': expected a string")
        if not isinstance(choices, list) or len(choices) < MIN_CHOICES:
            raise InputError(f"{where}, field 'choices': expected a list of at least {MIN_CHOICES} strings")
        for j, c in enumerate(choices):
            if not isinstance(c, str) or not c:
                raise InputError(f"{where}, field 'choices[{j}]': expected a non-empty string")
        if isinstance(gold, bool) or not isinstance(gold, int):
            raise InputError(f"{where}, field 'gold': expected an integer index into 'choices'")
        if not 0 <= gold < len(choices):
            raise InputError(f"{where}, field 'gold': {gold} is out of range for {len(choices)} choices "
                             f"(expected 0..{len(choices) - 1})")
        items.append(TaskItem(context, tuple(choices), gold))
    if not items:
        raise InputError(f"{path}: no items")
    return items


@dataclass(frozen=True)
class TaskScore:
    acc: float
    acc_norm: float
    bpb: float  # bits per byte of the correct continuation
    loglik: list[np.ndarray]  # per item: log-likelihood of each choice (nats)


def encode_pairs(items: Sequence[TaskItem], encode: Callable[[str], list[int]], max_len: int):
    """Rows (ids, first scored position) for every (item, choice), the context cut from the left to fit."""
    rows, owners = [], []
    for i, item in enumerate(items):
        ctx = encode(item.context)
        for j, choice in enumerate(item.choices):
            cont = encode(choice)
            if not cont:
                raise InputError(f"task item {i + 1}, choice {j}: encodes to no tokens")
            cont = cont[-(max_len - 1):]  # at least one context token predicts the first choice token
            keep = max(1, max_len - len(cont))
            seq = (ctx[-keep:] if ctx else [0]) + cont  # an empty context starts from token 0
            rows.append((seq, len(seq) - len(cont)))
            owners.append((i, j))
    return rows, owners


@torch.no_grad()
def choice_logliks(logits_fn: Callable[[torch.Tensor], torch.Tensor], rows, batch_rows: int = 64) -> np.ndarray:
    """Σ log p of each row's scored tokens; rows are right-padded into batches of ``batch_rows``."""
    out = np.empty(len(rows))
    order = np.argsort([len(r[0]) for r in rows], kind="stable")  # similar lengths share a batch: less padding
    for b in range(0, len(rows), batch_rows):
        idx = order[b : b + batch_rows]
        T = max(len(rows[k][0]) for k in idx)
        ids = torch.zeros((len(idx), T), dtype=torch.long)
        mask = torch.zeros((len(idx), T - 1), dtype=torch.bool)
        for r, k in enumerate(idx):
            seq, start = rows[k]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, start - 1 : len(seq) - 1] = True  # logits at t predict token t + 1
        logp = torch.log_softmax(logits_fn(ids).float()[:, :-1], dim=-1)  # (B, T-1, V)
        tok = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
        out[idx] = (tok * mask).sum(dim=1).double().numpy()
    return out


def score_task(items: Sequence[TaskItem], logits_fn, encode, max_len: int, batch_rows: int = 64) -> TaskScore:
    """Accuracy, length-normalised accuracy and bits per byte of a model on ``items``."""
    rows, owners = encode_pairs(items, encode, max_len)
    ll = choice_logliks(logits_fn, rows, batch_rows)
    per_item = [np.empty(len(it.choices)) for it in items]
    for (i, j), v in zip(owners, ll, strict=True):
        per_item[i][j] = v
    nbytes = [np.array([len(c.encode("utf-8")) for c in it.choices], dtype=float) for it in items]
    acc = np.mean([np.argmax(l_) == it.gold for l_, it in zip(per_item, items, strict=True)])
    acc_norm = np.mean([np.argmax(l_ / b) == it.gold for l_, b, it in zip(per_item, nbytes, items, strict=True)])
    bpb = np.mean([-l_[it.gold] / (math.log(2) * b[it.gold]) for l_, b, it in zip(per_item, nbytes, items, strict=True)])
    return TaskScore(float(acc), float(acc_norm), float(bpb), per_item)
