"""Built-in tasks: the exact Bayes ceiling against simulation and a closed case; cloze items well formed."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.ladder.builtin_tasks import bayes_accuracy, cloze_items, synthetic_items
from scalinglab.ladder.synthetic import MarkovConfig, MarkovSource


def test_uniform_chain_gives_chance():
    src = MarkovSource(MarkovConfig(vocab_size=8, branching=8))
    src.P = np.full((8, 8), 1 / 8)  # every token equally likely: ties everywhere, the Bayes answer is a guess
    assert bayes_accuracy(src, 4) == pytest.approx(1 / 4, abs=1e-12)


def test_bayes_ceiling_matches_simulation():
    src = MarkovSource(MarkovConfig(vocab_size=16, order=1, branching=4, seed=3))
    exact = bayes_accuracy(src, 4)
    items, empirical = synthetic_items(src, 4000, context_len=3, n_choices=4, rng=np.random.default_rng(0))
    se = np.sqrt(exact * (1 - exact) / len(items))
    assert abs(empirical - exact) < 4 * se and 0.25 < exact < 1
    it = items[0]
    assert len(it.choices) == 4 and it.context.count("t") == 3 and it.choices[it.gold].startswith(" t")


def test_cloze_items_hold_the_true_next_line():
    text = "\n".join(f"line number {i}" for i in range(40))
    items = cloze_items(text, 10, context_lines=2, n_choices=4, rng=np.random.default_rng(1))
    for it in items:
        last = int(it.context.splitlines()[-1].split()[-1])
        assert it.choices[it.gold] == f"\nline number {last + 1}"
        assert len(set(it.choices)) == 4


def test_the_true_law_scores_the_bayes_accuracy():
    # A "model" that outputs the chain's own log-probabilities answers every item the Bayes way.
    import torch

    from scalinglab.ladder.tasks import score_task

    src = MarkovSource(MarkovConfig(vocab_size=16, order=1, branching=4, seed=3))
    items, bayes = synthetic_items(src, 300, context_len=4, n_choices=4, rng=np.random.default_rng(2))
    logp = torch.tensor(np.log(np.where(src.P > 0, src.P, 1e-30)), dtype=torch.float32)

    def encode(text):
        return [int(w[1:]) for w in text.split()]

    s = score_task(items, lambda ids: logp[ids], encode, max_len=16)
    assert s.acc == pytest.approx(bayes)
