"""batch_tradeoff and critical_batch: formula, Jacobian, and recovery of known constants through the fitter."""

import numpy as np
import pandas as pd
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.errors import InputError
from scalinglab.fitting import api
from scalinglab.laws.batch import BatchTradeoff, CriticalBatch
from scalinglab.laws.registry import get_law

# A ladder-like truth: S_min falls and B_crit grows with N (McCandlish et al. 2018, Fig. 7 trends).
TRADEOFF = {"S0": 2.0e5, "alpha_S": -0.45, "B0": 0.8, "alpha_B": 0.35}
CRITICAL = {"c": 0.02, "a": 0.5}


def tradeoff_table(truth, column="params", sigma=0.03, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for x in np.geomspace(1e5, 1e8, 5):
        for b in 2.0 ** np.arange(2, 12):
            s_min = truth["S0"] * x ** truth["alpha_S"]
            b_crit = truth["B0"] * x ** truth["alpha_B"]
            rows.append({"run": f"x{x:.3g}-b{b:g}", column: x, "batch_size": b,
                         "step": s_min * (1 + b_crit / b) * np.exp(rng.normal(0, sigma))})
    return pd.DataFrame(rows)


def test_tradeoff_formula_matches_direct_evaluation():
    law = BatchTradeoff()
    N, B = np.array([1e6, 3e7]), np.array([16.0, 1024.0])
    got = law.predict(TRADEOFF, {"params": N, "batch_size": B})
    s_min = TRADEOFF["S0"] * N ** TRADEOFF["alpha_S"]
    b_crit = TRADEOFF["B0"] * N ** TRADEOFF["alpha_B"]
    np.testing.assert_allclose(got, s_min * (1 + b_crit / B), rtol=1e-12)
    # E = B·S satisfies McCandlish et al.'s (S/S_min − 1)(E/E_min − 1) = 1 with E_min = B_crit·S_min
    np.testing.assert_allclose((got / s_min - 1) * (B * got / (b_crit * s_min) - 1), 1.0, rtol=1e-10)


@pytest.mark.parametrize("law", [BatchTradeoff("params"), BatchTradeoff("none"), CriticalBatch("params"),
                                 CriticalBatch("tokens")], ids=["tradeoff-N", "tradeoff-one-size", "critical-N",
                                                                "critical-D"])
def test_jacobian_matches_finite_differences(law):
    rng = np.random.default_rng(0)
    x = law.prepare({"params": 10 ** rng.uniform(5, 8, 15), "tokens": 10 ** rng.uniform(7, 10, 15),
                     "batch_size": 2.0 ** rng.integers(0, 12, 15)})
    grid = law.init_grid()
    theta = grid[rng.choice(len(grid), 5, replace=False)] + rng.normal(0, 0.1, (5, law.n_params))
    check_jacobian(law, theta, x)


@pytest.mark.parametrize("column", ["params", "tokens"], ids=["over-N", "over-D"])
def test_tradeoff_recovers_constants_within_bootstrap_intervals(column):
    table = tradeoff_table(TRADEOFF, column)
    name = "batch_tradeoff" if column == "params" else "batch_tradeoff:column=tokens"
    result = api.fit(table, name, bootstrap=40, jobs=1, huber_delta=0.1)
    for k, v in TRADEOFF.items():
        lo, hi = result.bootstrap.ci[k]
        assert lo <= v <= hi, (k, v, lo, hi)
    assert abs(result.params["alpha_B"] - TRADEOFF["alpha_B"]) < 0.05
    assert result.inputs["batch_size"] == [4.0, 2048.0]


def test_tradeoff_one_size_recovers_s_min_and_b_crit():
    truth = {"S_min": 800.0, "B_crit": 60.0}
    B = 2.0 ** np.arange(0, 12)
    steps = truth["S_min"] * (1 + truth["B_crit"] / B) * np.exp(np.random.default_rng(1).normal(0, 0.02, B.size))
    table = pd.DataFrame({"run": [f"b{b:g}" for b in B], "batch_size": B, "steps": steps})
    table = table.rename(columns={"steps": "step"})
    result = api.fit(table, "batch_tradeoff:column=none", huber_delta=0.1)
    assert result.params["S_min"] == pytest.approx(truth["S_min"], rel=0.05)
    assert result.params["B_crit"] == pytest.approx(truth["B_crit"], rel=0.1)


@pytest.mark.parametrize("column", ["params", "tokens"], ids=["over-N", "over-D"])
def test_critical_batch_recovers_constants(column):
    rng = np.random.default_rng(2)
    X = 10 ** rng.uniform(6, 10, 30)
    table = pd.DataFrame({"run": [f"r{i}" for i in range(30)], column: X,
                          "batch_size": CRITICAL["c"] * X ** CRITICAL["a"] * np.exp(rng.normal(0, 0.05, 30))})
    spec = "critical_batch" if column == "tokens" else "critical_batch:column=params"
    result = api.fit(table, spec, bootstrap=40, jobs=1, huber_delta=1.0)
    assert get_law(result.law).inputs == (column,)
    for k, v in CRITICAL.items():
        lo, hi = result.bootstrap.ci[k]
        assert lo <= v <= hi, (k, v, lo, hi)
    assert result.params["a"] == pytest.approx(CRITICAL["a"], abs=0.03)


def test_fitted_column_must_be_positive():
    table = tradeoff_table(TRADEOFF)
    table.loc[3, "step"] = 0.0
    with pytest.raises(InputError, match="row 4, field 'step'"):
        api.fit(table, "batch_tradeoff")


@pytest.mark.parametrize("spec", ["batch_tradeoff:column=flops", "critical_batch:column=none"], ids=["tradeoff", "critical"])
def test_bad_columns_are_input_errors(spec):
    with pytest.raises(InputError, match="--law"):
        get_law(spec)


def test_steps_column_of_a_file_is_the_fitted_column(tmp_path):
    B = 2.0 ** np.arange(0, 10)
    path = tmp_path / "steps.csv"
    pd.DataFrame({"batch_size": B, "steps": 500 * (1 + 40 / B)}).to_csv(path, index=False)
    result = api.fit(path, "batch_tradeoff:column=none")
    assert result.params == pytest.approx({"S_min": 500.0, "B_crit": 40.0}, rel=1e-4)
