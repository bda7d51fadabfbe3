"""Built-in ladders that need no input: the synthetic language (known floor) and Shakespeare/Milton.

    from scalinglab.ladder.demo import run_demo_ladder, demo_spec
    store = run_demo_ladder("demo.db", scale="demo")        # ~1.5 min on 2 cores, 5 sizes × 3 budgets
    store = run_demo_ladder("full.db", scale="full")        # the larger ladder, 5 sizes × 4 budgets
    store = run_demo_ladder("sh.db", scale="full", corpus="shakespeare")

Scales: ``demo`` (what ``scalinglab demo`` runs before its fit: 5 widths × 0.25M/0.75M/2.25M tokens) and
``full`` (a fourth budget, 6.75M tokens: D spans 1.4 decades); the synthetic language is an order-1 sparse Markov chain over 64 tokens with
8 successors per token (entropy rate ≈ 1.75 nats), chosen so that small models reach within a few
hundredths of a nat of the floor on a CPU budget and a fitted E can be checked against it.
"""

from __future__ import annotations

from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.ladder.spec import LadderSpec, parse_spec

__all__ = ["demo_spec", "run_demo_ladder", "SCALES", "CORPORA"]

SCALES = ("demo", "full")
CORPORA = ("synthetic", "shakespeare")
SIZES = [  # widths × depths from ~3k to ~100k non-embedding parameters
    {"d_model": 16, "n_layer": 1, "n_head": 1},
    {"d_model": 24, "n_layer": 1, "n_head": 1},
    {"d_model": 32, "n_layer": 2, "n_head": 2},
    {"d_model": 48, "n_layer": 2, "n_head": 2},
    {"d_model": 64, "n_layer": 2, "n_head": 2},
]
TOKENS = {"demo": [2.5e5, 7.5e5, 2.25e6], "full": [2.5e5, 7.5e5, 2.25e6, 6.75e6]}
CORPUS = {
    "synthetic": {"kind": "synthetic", "markov": {"vocab_size": 64, "order": 1, "branching": 8}},
    "shakespeare": {"kind": "shakespeare", "vocab_size": 512},
}


def demo_spec(scale: str = "demo", corpus: str = "synthetic") -> LadderSpec:
    if scale not in SCALES:
        raise InputError(f"demo ladder: scale {scale!r}, expected one of {', '.join(SCALES)}")
    if corpus not in CORPORA:
        raise InputError(f"demo ladder: corpus {corpus!r}, expected one of {', '.join(CORPORA)}")
    raw = {
        "name": f"{corpus}-{scale}",
        "corpus": CORPUS[corpus],
        "model": {"seq_len": 64},
        "sizes": SIZES,
        "tokens": TOKENS[scale],
        "train": {"lr": 1e-2, "schedule": "cosine", "batch_size": 32, "warmup_frac": 0.05, "n_evals": 6},
    }
    return parse_spec(raw, f"built-in {corpus} ladder")


def run_demo_ladder(store_path: str | Path, progress: bool = True, scale: str = "demo", corpus: str = "synthetic",
                    executor: str = "local", workers: int | None = None) -> Path:
    """Train the built-in ladder into ``store_path`` (finished runs are skipped) and return the store path."""
    from scalinglab.ladder.executors import printer, run_ladder

    spec = demo_spec(scale, corpus)
    summary = run_ladder(spec, store_path, executor=executor, workers=workers,
                         on_result=printer(len(spec.jobs)) if progress else None)
    if summary.failed:
        run, error = next(iter(summary.failed.items()))
        raise RuntimeError(f"demo ladder: {len(summary.failed)} runs failed; first {run}: {error}")
    return Path(store_path)
