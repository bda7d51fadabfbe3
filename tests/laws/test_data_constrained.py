import numpy as np
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.laws.data_constrained import PUBLISHED, DataConstrained, compute_optimal_params


def _predict(law, public, N, D, U):
    x = law.prepare({"params": np.atleast_1d(N), "tokens": np.atleast_1d(D), "unique_tokens": np.atleast_1d(U)})
    return np.exp(law.log_predict(law.from_public(public)[None], x)[0])


@pytest.mark.parametrize(
    ("N", "D", "expected"),
    [(6.34e9, 242e9, 2.2256440889984477), (8.67e9, 178e9, 2.2269634075087867)],
    ids=["6.34B-242B", "8.67B-178B"],
)
def test_published_reference_values(N, D, expected):
    # Muennighoff et al. 2023 published constants; U_D = 25B unique tokens.
    got = _predict(DataConstrained(), PUBLISHED, N, D, 25e9)[0]
    assert got == pytest.approx(expected, rel=1e-9)


def test_no_repetition_is_chinchilla():
    # U_D = D and N ≤ N*(U_D): D' = D, N' = N, so the law is E + A/N^α + B/D^β.
    p = PUBLISHED
    N, D = np.array([1e8, 4e8]), np.array([1e11, 3e11])
    assert np.all(N < compute_optimal_params(D, p["A"], p["B"], p["alpha"], p["beta"]))
    chin = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    np.testing.assert_allclose(_predict(DataConstrained(), p, N, D, D), chin, rtol=1e-12)


def _design(rng, n=120):
    U = 10 ** rng.uniform(8.5, 10, n)
    D = U * 10 ** rng.uniform(0, 2, n)  # 1 to 100 epochs
    N = 10 ** rng.uniform(7, 9.5, n)  # spans both sides of N*(U_D)
    return N, D, U


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    law = DataConstrained()
    N, D, U = _design(rng, 40)
    x = law.prepare({"params": N, "tokens": D, "unique_tokens": U})
    theta = np.vstack([law.from_public(PUBLISHED), law.init_grid()[rng.choice(len(law.init_grid()), 5, replace=False)]])
    theta = theta + rng.normal(0, 0.02, theta.shape)
    capped = x["logN"] > (np.log(theta[:1, 3]) + theta[:1, 0] - np.log(theta[:1, 4]) - theta[:1, 1]
                          + theta[:1, 4] * x["logU"]) / theta[:1, 3]
    assert capped.any() and (~capped).any(), "the design should exercise both branches of U_N = min(N, N*)"
    check_jacobian(law, theta, x, rtol=1e-5, atol=1e-8)
