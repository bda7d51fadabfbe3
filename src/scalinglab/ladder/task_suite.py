"""The tasks a ladder measures at every evaluation: built-in tasks and task files, scored in training.

A ladder spec lists ``tasks:``; each entry is a built-in task name, a task file, or a mapping with options::

    tasks:
      - cloze                                   # text corpora: the true next line among 3 distractor lines
      - next_token                              # synthetic corpus: exact Bayes accuracy ceiling
      - {name: cloze, items: 400, choices: 4}   # a built-in with options
      - my_task.jsonl                           # {"context", "choices", "gold"} per line (path: beside the spec)

At every evaluation the trainer calls :meth:`TaskSuite.score` on the model; each task adds three metrics
to the run store, ``task_loss:<task>`` (bits per byte of the correct choice), ``acc:<task>`` and
``acc_norm:<task>``, scored by :func:`scalinglab.ladder.tasks.score_task` (the code ``score-tasks`` uses).

Items are a pure function of the corpus and the task's settings (fixed seed), so every run of a ladder is
scored on the same items. Cloze items come from the corpus's **validation** split only (text the models
never train on), each context and choice inside one held-out block.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from scalinglab.errors import InputError
from scalinglab.ladder.tasks import TaskItem, load_task_file, score_task

__all__ = ["TaskSpec", "TaskSuite", "parse_tasks", "build_items", "BUILTINS", "metric_names"]

# Built-in task → the corpus kinds it is defined on.
BUILTINS = {"cloze": ("shakespeare", "text"), "next_token": ("synthetic",)}
DEFAULT_ITEMS = 200
DEFAULT_CHOICES = 4
CLOZE_CONTEXT_LINES = 2
NEXT_TOKEN_CONTEXT = 16  # tokens of context per synthetic item (≥ the chain's order)
TASK_SEED = 1234  # items are the same for every run of every ladder on one corpus
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
OPTION_KEYS = {"name", "path", "items", "choices"}
METRIC_KINDS = ("task_loss", "acc", "acc_norm")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a ladder: a built-in (``path`` empty) or a task file."""

    name: str
    path: str = ""
    items: int = DEFAULT_ITEMS
    choices: int = DEFAULT_CHOICES

    def to_dict(self) -> dict:
        return asdict(self)


def metric_names(task: str) -> tuple[str, ...]:
    return tuple(f"{kind}:{task}" for kind in METRIC_KINDS)


def _positive_int(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{where}: {value!r}, expected an integer >= {minimum}")
    return value


def parse_tasks(raw, corpus_kind: str, source: str, base: Path | None = None) -> tuple[TaskSpec, ...]:
    """Validate a spec's ``tasks:`` list (built-in names exist for the corpus; files load cleanly)."""
    if not isinstance(raw, list):
        raise InputError(f"{source}: tasks: expected a list of task names or task files")
    out: list[TaskSpec] = []
    for i, entry in enumerate(raw):
        where = f"{source}: tasks[{i}]"
        if isinstance(entry, str):
            entry = {"path": entry} if _is_file_name(entry) else {"name": entry}
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a task name, a .jsonl file or a mapping")
        unknown = sorted(set(entry) - OPTION_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(OPTION_KEYS))})")
        path = entry.get("path", "")
        if not isinstance(path, str):
            raise InputError(f"{where}: path: expected a file name")
        if path:
            p = Path(path) if Path(path).is_absolute() or base is None else base / path
            try:
                load_task_file(p)  # every item checked now: a bad file fails before any training
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            name, path = entry.get("name", Path(path).stem), str(p)
        else:
            name = entry.get("name")
            if name not in BUILTINS:
                raise InputError(f"{where}: {name!r} is neither a built-in task ({', '.join(BUILTINS)}) nor a .jsonl file")
            if corpus_kind not in BUILTINS[name]:
                raise InputError(f"{where}: built-in task '{name}' needs a {' or '.join(BUILTINS[name])} corpus, "
                                 f"not '{corpus_kind}'")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise InputError(f"{where}: name {name!r} may only use letters, digits, '_', '.', '-'")
        items = _positive_int(entry.get("items", DEFAULT_ITEMS), f"{where}: items", 1)
        choices = _positive_int(entry.get("choices", DEFAULT_CHOICES), f"{where}: choices", 2)
        if name in {t.name for t in out}:
            raise InputError(f"{where}: a second task named '{name}'; task names must be unique")
        out.append(TaskSpec(name=name, path=path, items=items, choices=choices))
    return tuple(out)


def _is_file_name(text: str) -> bool:
    return text.lower().endswith((".jsonl", ".ndjson")) or "/" in text or "\\" in text


def heldout_text(corpus) -> list[str]:
    """The validation split as text, one string per held-out block (blocks are not contiguous in the corpus)."""
    ids, size = corpus.val_ids, corpus.val_block
    blocks = [corpus.tokenizer.decode([int(t) for t in ids[s : s + size]]) for s in range(0, len(ids), size)]
    # A block starts and ends mid-line: keep only its whole lines.
    return ["\n".join(b.split("\n")[1:-1]) for b in blocks]


def build_items(task: TaskSpec, corpus) -> list[TaskItem]:
    """The items of one task on this corpus (deterministic)."""
    from scalinglab.ladder.builtin_tasks import cloze_block_items, synthetic_items

    if task.path:
        return load_task_file(task.path)
    rng = np.random.default_rng([TASK_SEED, task.items, task.choices])
    if task.name == "next_token":
        items, _ = synthetic_items(corpus.source, task.items, NEXT_TOKEN_CONTEXT, task.choices, rng)
        return items
    return cloze_block_items(heldout_text(corpus), task.items, CLOZE_CONTEXT_LINES, task.choices, rng)


class TaskSuite:
    """A ladder's tasks, built once per corpus; :meth:`score` maps a model to its metric columns."""

    def __init__(self, tasks: tuple[TaskSpec, ...], corpus, batch_rows: int = 64):
        self.items = {t.name: build_items(t, corpus) for t in tasks}
        self.batch_rows = batch_rows
        tok = corpus.tokenizer
        self._encode: Callable[[str], list[int]] = lambda text: tok.encode(text).ids

    def score(self, model: torch.nn.Module, max_len: int, logits_fn=None) -> dict[str, float]:
        """{``task_loss:<task>``, ``acc:<task>``, ``acc_norm:<task>``} for every task."""
        fn = logits_fn or model
        was_training = model.training
        model.eval()
        out = {}
        try:
            for name, items in self.items.items():
                s = score_task(items, fn, self._encode, max_len, self.batch_rows)
                out.update(dict(zip(metric_names(name), (s.bpb, s.acc, s.acc_norm), strict=True)))
        finally:
            model.train(was_training)
        return out
