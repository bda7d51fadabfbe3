"""The bundled batch-size sweep (32-token sequences, budgets long enough for an interior B*): B*(D) and η*(N, D) fit."""

import numpy as np

from scalinglab import data as bundled
from scalinglab.fitting.hparams import HparamsConfig, fit_hparams, load_sweep

BSTAR = "hparams_sweep/bstar.csv"


def test_optimal_batch_fits_on_the_bundled_bstar_sweep():
    finals, curves, noise = load_sweep(bundled.path(BSTAR))
    assert finals["params"].nunique() >= 3 and finals["lr"].nunique() >= 4 and finals["batch_size"].nunique() >= 4
    assert finals["tokens"].round(-4).nunique() >= 3
    hp = fit_hparams(finals, None, HparamsConfig(n_boot=40), source=BSTAR).to_dict()
    fit = hp["optimal_batch"]
    assert fit is not None and hp["batch_bound"] is None
    statuses = [o["status"] for o in fit["optima"]]
    assert statuses.count("ok") >= 8, statuses  # interior minima in log B, not the smallest batch swept
    lo, hi = fit["bootstrap"]["ci"]["b"]
    b = fit["params"]["b"]
    assert np.isfinite([lo, hi, b]).all() and lo <= b <= hi and hi - lo < 2.0
    assert b > 0  # the optimal batch grows with the token budget
    grid = fit["diagnostics"]["grid"]
    measured = [o["batch_size"] for o in fit["optima"] if o["status"] == "ok"]
    assert min(grid) < min(measured) and max(measured) < max(grid)


def test_optimal_lr_fits_on_the_bundled_bstar_sweep_and_predicts_the_held_out_size():
    finals, _, _ = load_sweep(bundled.path(BSTAR))
    fit = fit_hparams(finals, None, HparamsConfig(n_boot=40), source=BSTAR).to_dict()["optimal_lr"]
    assert fit is not None and [o["status"] for o in fit["optima"]].count("ok") >= 8
    a_lo, a_hi = fit["bootstrap"]["ci"]["a"]
    assert np.isfinite([a_lo, a_hi]).all() and a_hi < 0  # η* falls with N
    assert all(r["within_one_step"] for r in fit["heldout"]["rows"])
