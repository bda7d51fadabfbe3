"""Plans that say how to train: η*, B*, B_crit, the trade-off; predict on a batch_tradeoff fit."""

import json

import numpy as np
import pytest
from tests.cli_run import run
from tests.fitting import sweeps
from tests.laws.test_batch import TRADEOFF, tradeoff_table

from scalinglab.fitting import api
from scalinglab.fitting.hparams_file import save_hparams
from scalinglab.fitting.result import FitResult
from scalinglab.fitting.synthetic import CHINCHILLA_PUBLISHED
from scalinglab.laws.registry import get_law
from scalinglab.planning.hparams import plan_hparams
from scalinglab.planning.hparams import tradeoff_table as trade_rows


@pytest.fixture
def hp():
    return sweeps.fitted_hparams()


def test_plan_inside_the_sweep_gives_the_true_optima_without_warnings(hp):
    N, D = 1e6, 4e7
    out = plan_hparams(hp, N, D)
    assert out["lr"]["value"] == pytest.approx(sweeps.lr_star(N, D), rel=0.05)
    assert out["batch_size"]["value"] == pytest.approx(sweeps.batch_star(D), rel=0.05)
    assert out["batch_tokens"]["value"] == pytest.approx(out["batch_size"]["value"] * sweeps.SEQ_LEN)
    lo, hi = out["lr"]["interval"]
    assert lo <= sweeps.lr_star(N, D) <= hi
    assert out["warnings"] == []


def test_plan_beyond_the_sweep_warns(hp):
    out = plan_hparams(hp, 1e9, 2e10)
    assert any("extrapolation of η*: params" in w for w in out["warnings"])
    assert any("extrapolation of B*: tokens" in w for w in out["warnings"])


def test_tradeoff_rows_follow_mccandlish():
    rows = trade_rows(sequences=1e6, b_star=100.0, b_crit=100.0)
    at = {r["batch_size"]: r for r in rows}
    assert at[100.0]["sequences"] == pytest.approx(1e6) and at[100.0]["relative_steps"] == 1.0
    e_min, s_min = 1e6 / 2, 1e6 / 2 / 100.0
    for r in rows:  # (S/S_min − 1)(E/E_min − 1) = 1
        assert (r["steps"] / s_min - 1) * (r["sequences"] / e_min - 1) == pytest.approx(1.0)


def test_predict_batch_tradeoff_prints_s_min_and_b_crit(tmp_path, capsys):
    fit = api.fit(tradeoff_table(TRADEOFF), "batch_tradeoff", bootstrap=30, jobs=1, huber_delta=0.1)
    path = tmp_path / "bt.json"
    fit.save(path)
    code, out, _ = run(["predict", str(path), "--params", "1e6", "--json"], capsys)
    assert code == 0
    pred = json.loads(out)
    want = TRADEOFF["B0"] * 1e6 ** TRADEOFF["alpha_B"]
    assert pred["B_crit"]["value"] == pytest.approx(want, rel=0.1)
    assert pred["B_crit"]["interval"][0] <= want <= pred["B_crit"]["interval"][1]
    assert set(pred["S_min"]) == {"value", "interval"}
    code, out, _ = run(["predict", str(path), "--params", "1e6"], capsys)
    assert code == 0 and "B_crit" in out and "S_min" in out
    code, _, err = run(["predict", str(path), "--tokens", "1e6"], capsys)
    assert code == 2 and "--params" in err


def test_plan_with_hparams_cli(hp, tmp_path, capsys):
    fit_path, hp_path = tmp_path / "fit.json", tmp_path / "hp.json"
    law = get_law("chinchilla")
    FitResult(law="chinchilla", formula=law.formula, params=CHINCHILLA_PUBLISHED, objective=0.0, n_points=0,
              huber_delta=1e-3, theta=law.from_public(CHINCHILLA_PUBLISHED).tolist()).save(fit_path)
    save_hparams(hp, hp_path)
    code, out, _ = run(["plan", str(fit_path), "--flops", "1e21", "--hparams", str(hp_path), "--json"], capsys)
    assert code == 0
    plan = json.loads(out)
    h = plan["hparams"]
    assert h["params"] == plan["params"] and np.isfinite(h["lr"]["value"]) and h["tradeoff"]
    assert h["warnings"]  # 1e21 FLOPs is far beyond the synthetic sweep
    code, out, _ = run(["plan", str(fit_path), "--flops", "1e21", "--hparams", str(hp_path)], capsys)
    assert code == 0 and "η*" in out and "steps vs batch size" in out and "warning" in out
    hp_path.write_text('{"kind": "scalinglab-hparams", "optimal_lr": {"law": "optimal_lr"}}')
    code, _, err = run(["plan", str(fit_path), "--flops", "1e21", "--hparams", str(hp_path)], capsys)
    assert code == 2 and "optimal_lr.params" in err


def test_unmeasured_batch_optimum_is_planned_as_a_bound(hp):
    hp = dict(hp, optimal_batch=None, batch_bound={"at_most": 2.0})
    out = plan_hparams(hp, 1e6, 4e7)
    assert out["batch_size"]["value"] == 2.0 and out["batch_size"]["bound"] == "at most"
    assert out["batch_tokens"]["value"] == 2.0 * sweeps.SEQ_LEN
    assert any("B* not measured" in w for w in out["warnings"])
