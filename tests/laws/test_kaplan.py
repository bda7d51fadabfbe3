import numpy as np
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.laws.kaplan import ComputePowerLaw, Kaplan

# Kaplan et al. 2020, Table 5 / Eq. 1.5
KAPLAN = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
COMPUTE = {"E": 1.7, "A": 2.6e3, "alpha": 0.16}


def _nd_grid(rng, n=60):
    N = 10 ** rng.uniform(7, 10, n)
    D = 10 ** rng.uniform(9, 12, n)
    return N, D


def test_kaplan_formula_matches_direct_evaluation():
    N, D = np.array([1e8, 3e9]), np.array([2e10, 5e11])
    p = KAPLAN
    direct = ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]
    law = Kaplan()
    got = np.exp(law.log_predict(law.from_public(p)[None], law.prepare({"params": N, "tokens": D}))[0])
    np.testing.assert_allclose(got, direct, rtol=1e-12)


def test_compute_law_matches_direct_evaluation():
    C = np.array([1e18, 1e21])
    law = ComputePowerLaw()
    got = np.exp(law.log_predict(law.from_public(COMPUTE)[None], law.prepare({"flops": C}))[0])
    np.testing.assert_allclose(got, COMPUTE["E"] + COMPUTE["A"] * C ** -COMPUTE["alpha"], rtol=1e-12)


@pytest.mark.parametrize("law_cls", [Kaplan, ComputePowerLaw], ids=["kaplan", "compute"])
def test_jacobian_matches_finite_differences(law_cls):
    rng = np.random.default_rng(0)
    law = law_cls()
    N, D = _nd_grid(rng, 20)
    x = law.prepare({"params": N, "tokens": D, "flops": 6 * N * D})
    theta = law.init_grid()[rng.choice(len(law.init_grid()), 6, replace=False)]
    theta += rng.normal(0, 0.05, theta.shape)
    theta = np.clip(theta, [b[0] if b[0] is not None else -np.inf for b in law.bounds()], np.inf)
    check_jacobian(law, theta, x)


@pytest.mark.parametrize("law_cls", [Kaplan, ComputePowerLaw], ids=["kaplan", "compute"])
def test_public_round_trip(law_cls):
    law = law_cls()
    theta = law.init_grid()[7]
    np.testing.assert_allclose(law.from_public(law.to_public(theta)), theta, rtol=1e-12, atol=1e-12)
