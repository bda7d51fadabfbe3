"""optimal_lr and optimal_batch: formula, Jacobian, and recovery of known constants through the fitter."""

import numpy as np
import pandas as pd
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.fitting import api
from scalinglab.laws.hparams import OptimalBatch, OptimalLR

# Li et al. 2025 ("Predictable Scale"), Eq. 2–3.
STEP_LR = {"c": 1.79, "a": -0.713, "b": 0.307}
STEP_BATCH = {"c": 0.58, "b": 0.571}


def _design(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)


def test_formulas_match_direct_evaluation():
    N, D = np.array([1e8, 3e9]), np.array([2e10, 5e11])
    np.testing.assert_allclose(OptimalLR().predict(STEP_LR, {"params": N, "tokens": D}),
                               1.79 * N ** -0.713 * D ** 0.307, rtol=1e-12)
    np.testing.assert_allclose(OptimalBatch().predict(STEP_BATCH, {"tokens": D}), 0.58 * D ** 0.571, rtol=1e-12)


@pytest.mark.parametrize("law", [OptimalLR(), OptimalBatch()], ids=["lr", "batch"])
def test_jacobian_matches_finite_differences(law):
    N, D = _design(12)
    x = law.prepare({"params": N, "tokens": D})
    theta = law.init_grid()[::9] + 0.1
    check_jacobian(law, theta, x)


@pytest.mark.parametrize(("law", "truth"), [("optimal_lr", STEP_LR), ("optimal_batch", STEP_BATCH)],
                         ids=["lr", "batch"])
def test_recovers_published_constants_within_bootstrap_intervals(law, truth):
    N, D = _design()
    rng = np.random.default_rng(3)
    the_law = OptimalLR() if law == "optimal_lr" else OptimalBatch()
    y = the_law.predict(truth, {"params": N, "tokens": D}) * np.exp(rng.normal(0, 0.1, N.size))
    table = pd.DataFrame({"run": [f"r{i}" for i in range(N.size)], "params": N, "tokens": D, the_law.target: y})
    result = api.fit(table, law, bootstrap=60, jobs=1, huber_delta=1.0)
    for k, v in truth.items():
        lo, hi = result.bootstrap.ci[k]
        assert lo <= v <= hi, (k, v, lo, hi)
    for k in truth:
        if k != "c":
            assert result.params[k] == pytest.approx(truth[k], abs=0.05)
