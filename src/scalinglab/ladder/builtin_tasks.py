"""Built-in multiple-choice tasks that need no input: synthetic next-token items with an exact Bayes
ceiling, and cloze items cut from held-out text.

**Synthetic** (on the Markov language of :mod:`scalinglab.ladder.synthetic`): an item's context is a
window sampled from the stationary process, its gold choice the true next token (drawn from P(·|c)), its
K − 1 distractors drawn uniformly without replacement from the other V − 1 tokens. The Bayes-optimal
answer is the choice of highest P(v|c), and its expected accuracy over the item distribution is exact:

    Acc* = Σ_c μ(c) Σ_g P(g|c) Σ_j C(n_eq, j)·C(n_less, K−1−j) / C(V−1, K−1) · 1/(j + 1)

with n_less = #{v ≠ g : P(v|c) < P(g|c)} and n_eq = #{v ≠ g : P(v|c) = P(g|c)} (ties broken uniformly).
Like the entropy floor for the loss, it is the accuracy ceiling a perfect model reaches.

**Cloze** (on any text, e.g. held-out Shakespeare): the context is ``context_lines`` consecutive lines,
the gold choice the line that follows, the distractors lines drawn from elsewhere in the text, of about
the gold line's length (so that the answer cannot be told by its length).
"""

from __future__ import annotations

from math import comb

import numpy as np

from scalinglab.errors import InputError
from scalinglab.ladder.synthetic import MarkovSource
from scalinglab.ladder.tasks import TaskItem

LENGTH_POOL = 8  # cloze: distractors are the closest in length among LENGTH_POOL · n_choices random lines


def bayes_accuracy(source: MarkovSource, n_choices: int) -> float:
    """Exact expected accuracy of the Bayes-optimal answer on synthetic items with ``n_choices`` choices."""
    V = source.cfg.vocab_size
    if not 2 <= n_choices <= V:
        raise InputError(f"synthetic task: n_choices={n_choices} must be between 2 and the vocabulary size {V}")
    k = n_choices - 1
    total = comb(V - 1, k)
    acc = 0.0
    for mu_c, p in zip(source.stationary, source.P, strict=True):
        if mu_c == 0:
            continue
        for g in np.flatnonzero(p > 0):
            n_less = int((p < p[g]).sum())
            n_eq = int((p == p[g]).sum()) - 1
            win = sum(comb(n_eq, j) * comb(n_less, k - j) / (j + 1) for j in range(min(k, n_eq) + 1))
            acc += mu_c * p[g] * win / total
    return float(acc)


def _context_id(source: MarkovSource, window: np.ndarray) -> int:
    V, order = source.cfg.vocab_size, source.cfg.order
    cid = 0
    for tok in window[-order:]:
        cid = cid * V + int(tok)
    return cid


def synthetic_items(source: MarkovSource, n_items: int, context_len: int, n_choices: int,
                    rng: np.random.Generator) -> tuple[list[TaskItem], float]:
    """(items in the synthetic tokenizer's text ``t3 t17 ...``, the Bayes answer's accuracy on these items)."""
    if context_len < source.cfg.order:
        raise InputError(f"synthetic task: context_len={context_len} is shorter than the chain's order {source.cfg.order}")
    V = source.cfg.vocab_size
    windows = source.sample(n_items, context_len + 1, rng)  # the last token of each window is the gold answer
    items, bayes_right = [], 0.0
    for w in windows:
        ctx, gold_tok = w[:-1], int(w[-1])
        others = np.delete(np.arange(V), gold_tok)
        distract = rng.choice(others, size=n_choices - 1, replace=False)
        gold = int(rng.integers(n_choices))
        toks = list(distract[:gold]) + [gold_tok] + list(distract[gold:])
        p = source.P[_context_id(source, ctx)][toks]
        best = np.flatnonzero(p == p.max())
        bayes_right += (gold in best) / best.size
        items.append(TaskItem(" ".join(f"t{t}" for t in ctx), tuple(f" t{t}" for t in toks), gold))
    return items, bayes_right / n_items


def cloze_items(text: str, n_items: int, context_lines: int, n_choices: int, rng: np.random.Generator) -> list[TaskItem]:
    """The true next line among distractor lines from elsewhere in ``text`` (blank lines skipped)."""
    return cloze_block_items([text], n_items, context_lines, n_choices, rng)


def cloze_block_items(texts: list[str], n_items: int, context_lines: int, n_choices: int,
                      rng: np.random.Generator) -> list[TaskItem]:
    """Cloze items from several documents: each item's context and gold line lie inside one document (the
    held-out blocks of a corpus are not contiguous), distractors come from any other line of any document."""
    docs = [[ln.strip() for ln in t.splitlines() if ln.strip()] for t in texts]
    lines = [ln for d in docs for ln in d]
    offsets = np.cumsum([0] + [len(d) for d in docs])
    # (first context line) positions whose context and next line stay inside one document
    starts_all = np.concatenate([np.arange(o, o + len(d) - context_lines) for o, d in zip(offsets, docs, strict=False)
                                 if len(d) > context_lines] or [np.zeros(0, dtype=int)]).astype(int)
    need = context_lines + n_choices + 1
    if len(lines) < need or not len(starts_all):
        raise InputError(f"cloze task: the text has {len(lines)} non-blank lines; need at least {need}")
    starts = np.sort(rng.choice(starts_all, size=min(n_items, len(starts_all)), replace=False))
    items = []
    for s in starts:
        nxt = s + context_lines
        gold_line = lines[nxt]
        # Distractors: other lines (none identical to the gold one: that would be a second right answer), the
        # closest in length among a random sample, so that neither the raw nor the per-byte likelihood can
        # pick the answer by its length alone.
        sample = rng.choice(len(lines), size=min(len(lines), LENGTH_POOL * n_choices), replace=False)
        pool = [lines[i] for i in sample if not s <= i <= nxt and lines[i] != gold_line]
        pool = sorted(dict.fromkeys(pool), key=lambda ln: abs(len(ln) - len(gold_line)))
        uniq = pool[: n_choices - 1]
        if len(uniq) < n_choices - 1:
            raise InputError(f"cloze task: too few distinct lines for {n_choices} choices")
        gold = int(rng.integers(n_choices))
        choices = uniq[:gold] + [gold_line] + uniq[gold:]
        items.append(TaskItem("\n".join(lines[s:nxt]), tuple("\n" + c for c in choices), gold))
    return items
