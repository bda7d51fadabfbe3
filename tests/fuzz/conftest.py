"""Fixtures of the fuzz suite: one valid input of each kind, which the tests then break."""

from __future__ import annotations

import json

import pytest

from scalinglab.fitting.synthetic import chinchilla_grid

# A 4 × 4 Chinchilla grid: enough rows for approaches and fits, small enough to read in milliseconds.
GRID = chinchilla_grid(4, 4, noise=0.005, seed=1)[["params", "tokens", "loss"]].reset_index(drop=True)
GRID.attrs = {}  # no row-number metadata: Parquet would try to store it
TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022, Eq. 10


def chinchilla_loss(p: dict, n: float, d: float) -> float:
    """Plain reference: E + A·N^-α + B·D^-β."""
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


def fit_document(n_boot: int = 8) -> dict:
    """A fit JSON as `scalinglab fit --out` writes it, with known parameters and a small bootstrap."""
    import numpy as np

    from scalinglab.fitting.result import Bootstrap, FitResult
    from scalinglab.laws.chinchilla import Chinchilla

    law = Chinchilla()
    rng = np.random.default_rng(0)
    samples = {k: (v * (1 + 0.01 * rng.standard_normal(n_boot))).tolist() for k, v in TRUE.items()}
    fit = FitResult(law="chinchilla", formula=law.formula, params=dict(TRUE), objective=1e-4, n_points=16,
                    huber_delta=1e-3, theta=law.from_public(TRUE).tolist(),
                    inputs={"params": [1e7, 1e9], "tokens": [1e9, 1e11], "flops": [6e16, 6e20]},
                    bootstrap=Bootstrap(n=n_boot, level=0.95, ci={k: [min(v), max(v)] for k, v in samples.items()},
                                        samples=samples))
    return json.loads(json.dumps(fit.to_dict()))


@pytest.fixture(scope="session")
def fit_doc() -> dict:
    return fit_document()


@pytest.fixture(scope="session")
def gpt2_dirs(tmp_path_factory):
    """(float dir, quantized dir, calibration text) of a tiny GPT-2; built once, never modified."""
    from tests.fuzz.harness import run_cli
    from tests.quant.tiny_models import TEXT, build_model, make_tokenizer

    root = tmp_path_factory.mktemp("gpt2")
    fp = root / "fp"
    build_model("gpt2").save_pretrained(fp)
    make_tokenizer().save_pretrained(fp)
    calib = root / "calib.txt"
    calib.write_text(TEXT)
    q = root / "q"
    out = run_cli(["quantize", fp, "--method", "rtn", "--calib", calib, "--calib-seqs", "4", "--seq-len", "32",
                   "--out", q])
    assert out.code == 0, out.describe()
    return fp, q, calib
