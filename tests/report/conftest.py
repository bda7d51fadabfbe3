"""Shared inputs for the report tests: the bundled Gemstones runs with a bootstrapped, held-out fit, and a
tiny real ladder (3 widths × 2 budgets on the synthetic language) with its fit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # browser.py, the headless Chromium driver

TINY_LADDER = {
    "name": "tiny", "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
    "model": {"seq_len": 16, "n_head": 1, "n_layer": 1},
    "sizes": [{"d_model": 8}, {"d_model": 16}, {"d_model": 24}],
    "tokens": [4096, 12288],
    "train": {"batch_size": 8, "n_evals": 4, "eval_seqs": 16, "lr": 1e-2},
}


@pytest.fixture(scope="session")
def gemstones_fit(tmp_path_factory, gemstones_path):
    """Chinchilla on Gemstones with 20 bootstrap refits, the 10 largest-compute points held out."""
    from scalinglab.fitting.api import fit

    path = tmp_path_factory.mktemp("gem") / "fit.json"
    fit(gemstones_path, "chinchilla", bootstrap=20, holdout="largest-compute=10").save(path)
    return path


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory):
    """(store, fit JSON) of a tiny ladder trained for real."""
    from scalinglab.fitting.api import fit
    from scalinglab.ladder.executors import run_ladder
    from scalinglab.ladder.spec import parse_spec

    root = tmp_path_factory.mktemp("ladder")
    store = root / "runs.db"
    summary = run_ladder(parse_spec(TINY_LADDER), store, workers=1, threads=1)
    assert len(summary.done) == 6 and not summary.failed
    fit(store, "chinchilla", bootstrap=10).save(root / "fit.json")
    return store, root / "fit.json"
