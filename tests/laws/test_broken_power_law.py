import numpy as np
import pytest
from tests.laws.conftest import check_jacobian

from scalinglab.laws.broken_power_law import BrokenPowerLaw

TRUTH = {"a": 1.8, "b": 60.0, "c0": 0.08, "c1": 0.12, "d1": 1e20, "f1": 0.5}


def _direct(p, x, n_breaks):
    y = p["b"] * x ** -p["c0"]
    for i in range(1, n_breaks + 1):
        y = y * (1 + (x / p[f"d{i}"]) ** (1 / p[f"f{i}"])) ** (-p[f"c{i}"] * p[f"f{i}"])
    return p["a"] + y


@pytest.mark.parametrize("n_breaks", [0, 1, 2], ids=["no-break", "one-break", "two-breaks"])
def test_matches_direct_evaluation(n_breaks):
    p = dict(TRUTH, c2=-0.05, d2=1e22, f2=2.0)
    law = BrokenPowerLaw(n_breaks=n_breaks)
    x = 10 ** np.linspace(16, 24, 9)
    got = np.exp(law.log_predict(law.from_public(p)[None], law.prepare({"flops": x}))[0])
    np.testing.assert_allclose(got, _direct(p, x, n_breaks), rtol=1e-12)


@pytest.mark.parametrize("n_breaks", [1, 2], ids=["one-break", "two-breaks"])
def test_jacobian_matches_finite_differences(n_breaks):
    rng = np.random.default_rng(n_breaks)
    law = BrokenPowerLaw(n_breaks=n_breaks)
    x = law.prepare({"flops": 10 ** rng.uniform(16, 24, 25)})
    grid = law.init_grid()
    theta = grid[rng.choice(len(grid), 6, replace=False)] + rng.normal(0, 0.05, (6, law.n_params))
    check_jacobian(law, theta, x)


def test_input_column_is_configurable():
    law = BrokenPowerLaw(column="params")
    assert law.inputs == ("params",)
    x = law.prepare({"params": np.array([1e8, 1e9])})
    assert law.log_predict(law.from_public(TRUTH)[None], x).shape == (1, 2)
