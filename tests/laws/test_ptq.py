"""The PTQ-degradation law (Kumar et al. 2024, Eq. 2): formula, Jacobian, and recovery of known constants."""

import numpy as np
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.fitting.api import fit
from scalinglab.fitting.ptq_synthetic import synthetic_quant_ladder
from scalinglab.fitting.quant_evals import load_quant_evals
from scalinglab.laws.ptq import KUMAR_PTQ, delta_ptq
from scalinglab.laws.registry import get_law


def test_formula_matches_direct_evaluation():
    N, D, P = np.array([3e7, 2.2e8, 7e9]), np.array([1.5e9, 2.6e10, 1.4e12]), np.array([3.0, 4.0, 8.0])
    p = KUMAR_PTQ
    direct = p["C_T"] * D ** p["gamma_D"] / N ** p["gamma_N"] * np.exp(-P / p["gamma_post"])
    got = get_law("ptq").predict(p, {"params": N, "tokens": D, "bits": P})
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    np.testing.assert_allclose(delta_ptq(p, N, D, P), direct, rtol=1e-12)


def test_degradation_grows_with_tokens_and_falls_with_params_and_bits():
    law, p = get_law("ptq"), KUMAR_PTQ

    def d(n, t, b):
        return law.predict(p, {"params": n, "tokens": t, "bits": b})[0]

    assert d(1e8, 4e10, 4) > d(1e8, 2e9, 4)  # overtrained models degrade more (the paper's headline)
    assert d(1e9, 2e10, 4) < d(1e8, 2e10, 4)
    assert d(1e8, 2e9, 6) < d(1e8, 2e9, 4)


def test_public_round_trip():
    law = get_law("ptq")
    theta = law.from_public(KUMAR_PTQ)
    assert law.to_public(theta) == pytest.approx(KUMAR_PTQ, rel=1e-12)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    law = get_law("ptq")
    x = law.prepare({"params": 10 ** rng.uniform(7, 10, 12), "tokens": 10 ** rng.uniform(9, 12, 12),
                     "bits": rng.choice([3.0, 4.0, 6.0, 8.0], 12)})
    theta = law.from_public(KUMAR_PTQ)[None] + rng.normal(0, 0.05, (4, law.n_params))
    check_jacobian(law, theta, x, rtol=1e-6, atol=1e-8)


def test_recovers_kumar_constants_within_bootstrap_intervals():
    evals = load_quant_evals(synthetic_quant_ladder(seed=0))
    rows = evals.rows.copy()
    rows.attrs = {"source": "synthetic"}
    result = fit(rows, "ptq", bootstrap=80, seed=0)
    assert result.target == "ptq_delta"
    for key, value in KUMAR_PTQ.items():
        lo, hi = result.bootstrap.ci[key]
        assert lo <= value <= hi, (key, value, lo, hi)
    assert result.params["gamma_D"] == pytest.approx(KUMAR_PTQ["gamma_D"], abs=0.03)
    assert result.params["gamma_post"] == pytest.approx(KUMAR_PTQ["gamma_post"], rel=0.05)
