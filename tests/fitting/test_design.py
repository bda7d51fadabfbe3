"""Design points: the grouped Huber sums equal the row-by-row sums, and fits on them reach the same optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.api import FitConfig, fit
from scalinglab.fitting.bootstrap import MAX_BOOTSTRAP, bootstrap, chunk_size, replicate_weights
from scalinglab.fitting.design import group_rows
from scalinglab.fitting.objective import HuberObjective
from scalinglab.fitting.optimize import multistart
from scalinglab.fitting.synthetic import chinchilla_grid
from scalinglab.laws.registry import get_law

DELTA = 1e-3


def repeated_table(reps: int = 6, seed: int = 0) -> pd.DataFrame:
    """A 4 × 5 (N, D) grid, each point trained ``reps`` times: fresh noise, plus exact copies of some rows."""
    rng = np.random.default_rng(seed)
    base = chinchilla_grid(4, 5, noise=0.0)
    base.attrs = {}
    t = pd.concat([base] * reps, ignore_index=True)
    t["loss"] = t["loss"] * np.exp(0.01 * rng.standard_normal(len(t)))
    t = pd.concat([t, t.iloc[:25]], ignore_index=True)  # 25 rows logged twice: identical inputs and loss
    t["run"] = [f"r{i}" for i in range(len(t))]
    return t


def objectives(table, law_name="chinchilla", weights=None):
    law = get_law(law_name)
    x = law.prepare({c: table[c].to_numpy() for c in law.inputs})
    loss = table["loss"].to_numpy()
    rows = HuberObjective(law, x, loss, DELTA, weights=weights, fused=False, group=False)  # the reference
    grouped = HuberObjective(law, x, loss, DELTA, weights=weights, fused=False)
    fused = HuberObjective(law, x, loss, DELTA, weights=weights)
    return law, rows, grouped, fused


def test_group_rows_counts_points_and_entries():
    t = repeated_table()
    law = get_law("chinchilla")
    x = law.prepare({c: t[c].to_numpy() for c in law.inputs})
    d = group_rows(list(x.values()), np.log(t["loss"].to_numpy()))
    assert d.n_points == 20 and d.n_rows == len(t)
    assert d.z.size == len(t) - 25 and d.counts.sum() == len(t) and d.counts.max() == 2
    for g in range(d.n_points):  # offsets sorted inside each point, rows of a point share its inputs
        assert np.all(np.diff(d.z[d.start[g]:d.start[g + 1]]) > 0)
    pt = np.repeat(np.arange(d.n_points), np.diff(d.start))[d.entry]
    np.testing.assert_array_equal(x["logN"], x["logN"][d.index][pt])
    np.testing.assert_array_equal(np.log(t["loss"].to_numpy()), d.y[d.entry])


@pytest.mark.parametrize("weighted", [False, True], ids=["counts", "bootstrap-weights"])
def test_grouped_objective_equals_row_by_row_sum(weighted):
    t = repeated_table()
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 3, size=(3, len(t))).astype(float) if weighted else None
    law, rows, grouped, fused = objectives(t, weights=weights)
    # around the optimum (most residuals inside ±δ) and far from it (most outside)
    theta = law.from_public({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})[None] \
        + np.concatenate([1e-3 * rng.standard_normal((3, 5)), 0.2 * rng.standard_normal((3, 5))])
    which = np.array([0, 1, 2, 2, 1, 0]) if weighted else None
    f_ref, g_ref = rows.value_and_grad(theta, which)
    for obj in (grouped, fused):
        f, g = obj.value_and_grad(theta, which)
        np.testing.assert_allclose(f, f_ref, rtol=1e-12)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12 * np.abs(g_ref).max())
        np.testing.assert_allclose(obj.value(theta, which), f_ref, rtol=1e-12)
    assert grouped.design.n_points == 20 and fused.compiled.n_points == 20


def test_grouped_objective_for_a_numpy_law():
    t = repeated_table()
    law, rows, grouped, _ = objectives(t, "kaplan")
    assert grouped.design is not None
    theta = law.init_grid()[::97]
    f_ref, g_ref = rows.value_and_grad(theta)
    f, g = grouped.value_and_grad(theta)
    ok = np.isfinite(f_ref)
    np.testing.assert_allclose(f[ok], f_ref[ok], rtol=1e-12)
    np.testing.assert_allclose(g[ok], g_ref[ok], rtol=1e-9, atol=1e-12 * np.abs(g_ref[ok]).max())


def test_fit_on_design_points_reaches_the_row_by_row_optimum():
    t = repeated_table(reps=110)  # 2,225 rows over 20 points: the search runs on the points' medians
    result = fit(t, "chinchilla")
    law, rows, _, _ = objectives(t)
    ref = multistart(rows, law.init_grid()[::45])  # plain row sums, 100 starts of the grid
    assert result.objective == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(result.theta, ref.theta, rtol=1e-5, atol=1e-7)
    # and the fit is exactly the fit of the table with each distinct row once, weighted by its count
    assert result.n_points == len(t)


def test_tissue_screened_on_a_subsample_reaches_the_full_optimum():
    from scalinglab.fitting.screen import screening_objective
    from scalinglab.fitting.synthetic import schedule_curves

    t = schedule_curves(n_runs=8, rows_per_run=250, total_steps=20_000)
    law = get_law("tissue")
    x = law.prepare({c: t[c].to_numpy() for c in law.inputs})
    obj = HuberObjective(law, x, t["loss"].to_numpy(), DELTA)
    assert obj.design is None  # every row is its own point: screening is what saves time
    screen = screening_objective(obj, t["run"].to_numpy(), np.argsort(t["step"].to_numpy()), budget=400)
    assert screen.log_loss.size <= 400 and screen.weights.sum() == pytest.approx(len(t))
    starts = law.init_grid()
    full = multistart(obj, starts, bounds=law.bounds())
    screened = multistart(obj, starts, bounds=law.bounds(), screen=screen)
    assert screened.objective == pytest.approx(full.objective, rel=1e-9)


def test_bootstrap_above_the_maximum_is_a_clear_error():
    with pytest.raises(InputError, match=r"--bootstrap: 100001 replicates; expected 0 to 100,000"):
        FitConfig(bootstrap=MAX_BOOTSTRAP + 1)
    with pytest.raises(InputError, match="--bootstrap: -1"):
        fit(chinchilla_grid(3, 3), "chinchilla", bootstrap=-1)


def test_bootstrap_chunks_are_bounded_and_reproducible(monkeypatch):
    assert chunk_size(100) == 100 and chunk_size(10_000_000) == 1
    monkeypatch.setattr("scalinglab.fitting.bootstrap.CHUNK", 3)  # 7 replicates in chunks of 3, 3, 1
    t = chinchilla_grid(4, 4, noise=0.01, seed=2)
    law = get_law("chinchilla")
    x = law.prepare({c: t[c].to_numpy() for c in law.inputs})
    starts = law.from_public({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})[None]
    groups = t["run"].to_numpy()
    a = bootstrap("chinchilla", x, t["loss"].to_numpy(), DELTA, groups, starts, None, 7, seed=3, jobs=1)
    b = bootstrap("chinchilla", x, t["loss"].to_numpy(), DELTA, groups, starts, None, 7, seed=3, jobs=2)
    np.testing.assert_array_equal(a[1], b[1])
    # the chunked draws are the stream of one draw of all replicates
    w = replicate_weights(groups, 7, np.random.default_rng(3))
    obj = HuberObjective(law, x, t["loss"].to_numpy(), DELTA, weights=w, group=False, fused=False)
    np.testing.assert_allclose(obj.value(a[0]), a[1], rtol=1e-9)


def test_objective_work_follows_design_points_not_rows():
    """Linear time by structure (nothing timed): after one pass to group rows, every law evaluation sees
    the design points only, however many rows repeat them; the search sees one pick per point."""
    from scalinglab.fitting.screen import screening_objective

    t = repeated_table(reps=100)  # 2,025 rows, 20 design points
    law = get_law("kaplan")
    x = law.prepare({c: t[c].to_numpy() for c in law.inputs})
    obj = HuberObjective(law, x, t["loss"].to_numpy(), DELTA)
    sizes = []
    real = law.value_and_vjp

    def spy(theta, xp):
        sizes.append(max(v.shape[-1] for v in xp.values()))
        return real(theta, xp)

    law.value_and_vjp = spy
    multistart(obj, law.init_grid()[:20])
    assert sizes and max(sizes) == 20

    chin = get_law("chinchilla")
    xc = chin.prepare({c: t[c].to_numpy() for c in chin.inputs})
    fused = HuberObjective(chin, xc, t["loss"].to_numpy(), DELTA)
    assert fused.compiled.n_points == 20 and fused.compiled.n_rows == len(t)
    screen = screening_objective(fused, budget=100)
    assert screen.compiled.n_points == 20 and screen.log_loss.size == 20
    assert screen.weights.sum() == pytest.approx(len(t))
