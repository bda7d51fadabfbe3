"""The demo's hyperparameter part on the bundled Shakespeare/Milton sweep."""

import json

from rich.console import Console

from scalinglab import data as bundled
from scalinglab.fitting.hparams_demo import NEXT_RUNG, SWEEP, load_bundled_sweep, run_hparams_part
from scalinglab.fitting.hparams_file import load_hparams


def test_bundled_sweep_covers_the_must_show_grid():
    finals, curves, noise = load_bundled_sweep()
    assert bundled.path(SWEEP).is_file()
    assert finals["params"].nunique() >= 3 and finals["lr"].nunique() >= 4 and finals["batch_size"].nunique() >= 4
    assert finals["tokens"].nunique() >= 2  # two budgets: η*(N, D) needs N and D apart
    assert noise is not None and (noise["b_simple"] > 0).all() and len(curves) > len(finals)


def test_demo_part_prints_a_plan_with_lr_and_batch(tmp_path):
    console = Console(record=True, width=140)
    out = run_hparams_part(tmp_path, console, bootstrap=20)
    text = console.export_text()
    assert "η* (peak learning rate)" in text and "B* (sequences per step)" in text
    hp = load_hparams(tmp_path / "hp.json")
    finals, _, _ = load_bundled_sweep()
    plan = out["plan"]
    assert plan["params"] == NEXT_RUNG * finals["params"].max()
    lo, hi = plan["lr"]["interval"]
    assert lo <= plan["lr"]["value"] <= hi and plan["batch_tokens"]["value"] == plan["batch_size"]["value"] * 32
    assert any("extrapolation of η*" in w for w in plan["warnings"])  # the next rung lies beyond the sweep
    assert json.loads(json.dumps(hp))["optimal_lr"]["law"] == "optimal_lr"
