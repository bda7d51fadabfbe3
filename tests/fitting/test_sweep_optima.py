import numpy as np
import pandas as pd
import pytest
from tests.fitting import sweeps

from scalinglab.fitting.sweep_optima import parabola_minimum, sweep_optima


def test_parabola_vertex_between_grid_points():
    x = np.log(2.0 ** np.arange(-10, -3))
    true = np.log(2.0**-6.6)
    opt = parabola_minimum(x, 2.0 + 0.05 * (x - true) ** 2)
    assert opt.status == "ok"
    assert opt.log_h == pytest.approx(true, abs=1e-9)
    assert opt.loss == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize(("loss", "status"), [(np.arange(7.0), "edge"), (-np.abs(np.arange(7.0) - 3), "edge"),
                                              (np.array([3.0, 1.0, 2.0]), "ok"), (np.array([1.0, 2.0]), "few")],
                         ids=["minimum-at-edge", "maximum-inside", "three-points", "two-points"])
def test_unmeasured_optima_are_flagged(loss, status):
    assert parabola_minimum(np.arange(float(len(loss))), loss).status == status


def test_asymmetric_bowl_uses_only_the_window_around_the_minimum():
    # Divergence at large η (a wall) must not drag the vertex: only 2 neighbours each side are fitted.
    x = np.linspace(-8, -2, 13)
    y = 2 + 0.05 * (x + 6) ** 2 + np.where(x > -3.5, 5.0 * (x + 3.5) ** 2, 0.0)
    assert parabola_minimum(x, y).log_h == pytest.approx(-6.0, abs=1e-9)


def test_sweep_optima_profiles_over_the_other_knob():
    table = sweeps.final_sweep(noise=0.0)
    lr_opt = sweep_optima(table, "lr")
    assert len(lr_opt) == len(sweeps.SIZES) * len(sweeps.BUDGETS)
    assert (lr_opt["status"] == "ok").all()
    want = sweeps.lr_star(lr_opt["params"].to_numpy(), lr_opt["tokens"].to_numpy())
    # The bowl is exactly quadratic in log η, so the vertex is exact whatever the grid.
    np.testing.assert_allclose(lr_opt["lr"], want, rtol=1e-6)
    b_opt = sweep_optima(table, "batch_size")
    np.testing.assert_allclose(b_opt["batch_size"], sweeps.batch_star(b_opt["tokens"].to_numpy()), rtol=1e-6)


def test_sweep_optima_keeps_groups_without_an_optimum():
    table = pd.DataFrame({"params": 1.0, "tokens": 1.0, "lr": [1e-3, 2e-3, 4e-3], "loss": [3.0, 2.0, 1.0]})
    out = sweep_optima(table, "lr")
    assert out["status"].tolist() == ["edge"] and np.isnan(out["lr"].iloc[0])


def test_nominal_budgets_merge_whole_step_roundings():
    from scalinglab.fitting.sweep_optima import nominal_budgets

    tokens = np.array([60416, 61440, 60416, 120320, 122880, 120832, 1e6])
    got = nominal_budgets(tokens)
    assert len(set(got[:3])) == 1 and len(set(got[3:6])) == 1 and got[6] == 1e6
    assert got[0] == 60416 and got[3] == 120832
