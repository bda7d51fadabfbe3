import numpy as np
import pytest
from tests.laws.conftest import check_jacobian
from tests.laws.schedules import WARMUP, curve_table, schedule

from scalinglab.laws.lr_schedule import Tissue, annealing_area, reconstruct

TRUTH = {"L0": 2.8, "A": 0.6, "alpha": 0.45, "C": 0.5}


def _x(law, table):
    return law.prepare({"run": table["run"].to_numpy(), "step": table["step"].to_numpy(), "lr": table["lr"].to_numpy()})


def test_reconstruct_interpolates_between_samples_and_keeps_row_order():
    table = curve_table(["cosine", "constant"]).sample(frac=1.0, random_state=0)  # rows shuffled, runs interleaved
    curves = reconstruct(table["run"].to_numpy(), table["step"].to_numpy(), table["lr"].to_numpy())
    assert [str(table["run"].iloc[c.rows[0]]) for c in curves] == list(dict.fromkeys(table["run"]))
    for c in curves:
        kind = table["run"].iloc[c.rows[0]]
        assert np.all(np.diff(table["step"].to_numpy()[c.rows]) > 0)
        truth = schedule(kind, 8000)[c.first : c.steps[-1] + 1]
        np.testing.assert_allclose(c.eta, truth, rtol=2e-3)  # cosine sampled every 125 steps, linear in between
        assert c.warmup_area == pytest.approx(0.5 * truth[0] * WARMUP)
        np.testing.assert_allclose(c.area, c.warmup_area + np.cumsum(c.eta))


def test_reconstruct_rejects_repeated_steps():
    with pytest.raises(ValueError, match="appears twice"):
        reconstruct(np.array(["a", "a"]), np.array([10, 10]), np.array([1e-3, 1e-3]))


def test_annealing_area_is_the_momentum_recursion():
    eta = schedule("wsd", 3000)[WARMUP:]
    m, s2, prev = 0.0, [], eta[0]
    for e in eta:
        m = 0.999 * m + (prev - e)
        prev = e
        s2.append(s2[-1] + m if s2 else m)
    np.testing.assert_allclose(annealing_area(eta, 0.999), s2, rtol=1e-12, atol=1e-15)


def test_tissue_matches_direct_evaluation():
    table = curve_table(["wsd"])
    law = Tissue()
    c = reconstruct(table["run"].to_numpy(), table["step"].to_numpy(), table["lr"].to_numpy())[0]
    i = c.index(c.steps)
    direct = TRUTH["L0"] + TRUTH["A"] * c.area[i] ** -TRUTH["alpha"] - TRUTH["C"] * annealing_area(c.eta)[i]
    got = np.exp(law.log_predict(law.from_public(TRUTH)[None], _x(law, table))[0])
    np.testing.assert_allclose(got, direct, rtol=1e-12)


def test_tissue_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    law = Tissue()
    x = _x(law, curve_table(["cosine", "wsd"], every=500))
    theta = law.from_public(TRUTH)[None] + rng.normal(0, 0.05, (5, 4))
    check_jacobian(law, theta, x)
