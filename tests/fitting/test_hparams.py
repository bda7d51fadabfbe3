"""fit_hparams end to end on synthetic sweeps with known laws; hp.json validation; the CLI command."""

import json

import numpy as np
import pytest
from tests.fitting import sweeps

from scalinglab.cli import main
from scalinglab.errors import InputError
from scalinglab.fitting.hparams import HparamsConfig, fit_hparams
from scalinglab.fitting.hparams_file import load_hparams, save_hparams


@pytest.fixture
def hp():
    return sweeps.fitted_hparams()


def test_optimal_lr_and_batch_recover_their_constants(hp):
    for key, truth in (("optimal_lr", sweeps.LR_TRUTH), ("optimal_batch", sweeps.BATCH_TRUTH)):
        fit = hp[key]
        for k, v in truth.items():
            lo, hi = fit["bootstrap"]["ci"][k]
            assert lo <= v <= hi, (key, k, v, lo, hi)
            assert fit["params"][k] == pytest.approx(v, rel=0.05 if k == "c" else 0.02, abs=0.02)
        assert all(o["status"] == "ok" for o in fit["optima"])
    held = hp["optimal_lr"]["heldout"]  # exact bowls: the largest size's optimum is predicted closely
    assert held and all(r["within_one_step"] and r["grid_steps"] < 0.2 for r in held["rows"])
    assert {r["params"] for r in held["rows"]} == {max(sweeps.SIZES)}


def test_tradeoff_and_critical_batch_from_curves(hp):
    fit = hp["tradeoff"]["batch_tradeoff"]
    assert fit["params"]["alpha_B"] == pytest.approx(sweeps.TRADEOFF_TRUTH["alpha_B"], abs=0.1)
    t = sweeps.TRADEOFF_TRUTH
    for row in hp["tradeoff"]["per_size"]:
        assert row["B_crit"] == pytest.approx(t["B0"] * row["params"] ** t["alpha_B"], rel=0.25)  # 2 % noise, 6 batch sizes
    assert hp["critical_batch"]["better"] in ("params", "tokens")
    assert set(hp["critical_batch"]["fits"]) == {"params", "tokens"}


def test_one_budget_per_size_cannot_separate_n_and_d():
    table = sweeps.final_sweep()
    table = table[table["tokens"] == sweeps.BUDGETS[0]]
    with pytest.raises(InputError, match="two budgets per size") as exc:
        fit_hparams(table, None, HparamsConfig(n_boot=0))
    assert "optimal_batch" in str(exc.value)  # one D: B*(D) has nothing to fit either


def test_file_round_trip_and_validation(hp, tmp_path):
    path = tmp_path / "hp.json"
    save_hparams(hp, path)
    assert load_hparams(path)["optimal_lr"]["params"] == hp["optimal_lr"]["params"]
    bad = json.loads(path.read_text())
    bad["optimal_lr"]["theta"][1] = "x"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"optimal_lr.theta\[1\]"):
        load_hparams(path)
    path.write_text(json.dumps({"kind": "other"}))
    with pytest.raises(InputError, match="not a hyperparameter fit"):
        load_hparams(path)
    path.write_text("{")
    with pytest.raises(InputError, match="not a JSON file"):
        load_hparams(path)


def test_cli_hparams_writes_hp_json(tmp_path, capsys):
    csv = tmp_path / "sweep.csv"
    sweeps.final_sweep().to_csv(csv, index=False)
    out = tmp_path / "hp.json"
    with pytest.raises(SystemExit) as exc:
        main(["hparams", str(csv), "--out", str(out), "--bootstrap", "20", "--plot", str(tmp_path / "hp.png")])
    assert exc.value.code == 0
    stdout = capsys.readouterr().out
    assert "optimal learning rate" in stdout and "optimal batch size" in stdout
    data = load_hparams(out)
    assert data["optimal_lr"]["params"]["a"] == pytest.approx(sweeps.LR_TRUTH["a"], abs=0.02)
    assert np.isfinite(data["optimal_batch"]["params"]["b"])
    assert (tmp_path / "hp.png").stat().st_size > 10_000


def test_cli_hparams_bad_table_is_one_line(tmp_path, capsys):
    csv = tmp_path / "sweep.csv"
    sweeps.final_sweep()[["run", "params", "tokens", "loss"]].to_csv(csv, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["hparams", str(csv)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no hyperparameter law could be fitted" in err and len(err.strip().splitlines()) == 1


def test_noise_scale_points_decide_critical_batch_over_d():
    rng = np.random.default_rng(0)
    import pandas as pd

    rows = []
    for n in (1e5, 3e5, 1e6):
        for d in np.geomspace(1e6, 1e8, 6):
            rows.append({"run": f"N{n:g}", "params": n, "tokens": d, "step": d / 1e3, "batch_size": 8.0,
                         "b_simple": 0.05 * d**0.4 * np.exp(rng.normal(0, 0.05))})
    out = fit_hparams(sweeps.final_sweep(), None, HparamsConfig(n_boot=0), noise=pd.DataFrame(rows)).to_dict()
    crit = out["critical_batch"]
    assert crit["better"] == "tokens"
    assert crit["fits"]["tokens"]["params"]["a"] == pytest.approx(0.4, abs=0.03)
    assert crit["rms_log_residual"]["tokens"] < crit["rms_log_residual"]["params"]


def test_load_sweep_splits_curves_and_reads_b_simple(tmp_path):
    from scalinglab.fitting.hparams import load_sweep

    curves, _ = sweeps.tradeoff_curves()
    curves["b_simple"] = np.where(curves["batch_size"] > 8, 5.0, np.nan)  # runs without accumulation have none
    path = tmp_path / "curves.csv"
    curves.to_csv(path, index=False)
    finals, got, noise = load_sweep(path)
    assert len(finals) == curves["run"].nunique() and len(got) == len(curves)
    assert len(noise) == int((curves["batch_size"] > 8).sum()) and set(noise.columns) >= {"params", "tokens", "b_simple"}
    curves.drop(columns="b_simple").to_csv(path, index=False)
    assert load_sweep(path)[2] is None


def test_every_sweep_best_at_the_smallest_batch_gives_an_upper_bound():
    from scalinglab.fitting.hparams import edge_bound

    table = sweeps.final_sweep()
    table = table[table["batch_size"] >= 256]  # every B* of the synthetic sweep lies below 256
    assert edge_bound(table, "batch_size") == {"at_most": 256.0}
    out = fit_hparams(table, None, HparamsConfig(n_boot=0)).to_dict()
    assert out["optimal_batch"] is None and out["batch_bound"] == {"at_most": 256.0}


def test_cli_steps_table_for_a_named_target(tmp_path, capsys):
    curves, _ = sweeps.tradeoff_curves()
    path, table = tmp_path / "curves.csv", tmp_path / "steps.csv"
    curves.to_csv(path, index=False)
    with pytest.raises(SystemExit) as exc:
        main(["hparams", str(path), "--bootstrap", "0", "--target-loss", "2.6", "--steps-table", str(table)])
    assert exc.value.code == 0
    import pandas as pd

    got = pd.read_csv(table)
    assert (got["target"] == 2.6).all() and {"run", "step", "tokens", "reached"} <= set(got.columns)
    assert got["reached"].any() and np.isfinite(got.loc[got["reached"], "step"]).all()
