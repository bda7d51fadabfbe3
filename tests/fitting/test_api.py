"""End-to-end fits: parameter recovery within bootstrap intervals, published numbers, holdout, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.api import fit
from scalinglab.fitting.result import FitResult
from scalinglab.fitting.synthetic import CHINCHILLA_PUBLISHED, chinchilla_grid


@pytest.fixture(scope="module")
def recovered():
    table = chinchilla_grid(10, 12, noise=0.01, seed=7)
    return fit(table, "chinchilla", bootstrap=200, seed=1)


@pytest.mark.parametrize("name", list(CHINCHILLA_PUBLISHED))
def test_chinchilla_constants_inside_bootstrap_intervals(recovered, name):
    lo, hi = recovered.bootstrap.ci[name]
    assert lo <= CHINCHILLA_PUBLISHED[name] <= hi, (name, lo, hi, recovered.params[name])
    assert lo < recovered.params[name] < hi


def test_intervals_are_not_degenerate(recovered):
    for name, (lo, hi) in recovered.bootstrap.ci.items():
        assert hi > lo, name
    assert recovered.bootstrap.failed == 0


def test_gemstones_matches_published_fit(gemstones_path):
    # Published Gemstones approach-3 fit on cool_end (Huber δ = 1e-3): α=0.3003, β=0.5802, A=225.8, B=2.72e5, E=2.075.
    r = fit(gemstones_path, "chinchilla")
    assert r.params["alpha"] == pytest.approx(0.3003, abs=5e-4)
    assert r.params["beta"] == pytest.approx(0.5802, abs=5e-4)
    assert r.params["E"] == pytest.approx(2.075, abs=2e-3)
    assert r.params["A"] == pytest.approx(225.8, rel=0.01)
    assert r.params["B"] == pytest.approx(2.72e5, rel=0.01)


def test_holdout_reports_largest_compute_error():
    table = chinchilla_grid(8, 8, noise=0.0, seed=0)
    r = fit(table, "chinchilla", holdout="largest-compute=4")
    assert r.n_points == 60
    assert len(r.holdout["relative_error"]) == 4
    assert r.holdout["mean_abs_relative_error"] < 1e-4  # noiseless data extrapolates exactly
    assert min(r.holdout["flops"]) >= table["flops"].sort_values().iloc[-4]


def test_holdout_on_a_table_without_file_row_numbers():
    """A table built in memory (or read from a run store) has no file row numbers: holdout still works."""
    table = chinchilla_grid(6, 6, noise=0.0, seed=1)
    table.attrs.clear()
    r = fit(table, "chinchilla", holdout="largest-compute=1")
    assert r.n_points == 35 and r.holdout["mean_abs_relative_error"] < 1e-4


def test_holdout_rejects_bad_spec():
    with pytest.raises(InputError, match="largest-compute=K"):
        fit(chinchilla_grid(4, 4), "chinchilla", holdout="smallest=2")


def test_json_round_trip(tmp_path, recovered):
    p = tmp_path / "fit.json"
    recovered.save(p)
    data = json.loads(p.read_text())
    for key in ("law", "params", "objective", "n_points", "huber_delta", "bootstrap", "data_sha256", "scalinglab_version"):
        assert key in data
    assert set(data["bootstrap"]["ci"]) == set(CHINCHILLA_PUBLISHED)
    back = FitResult.load(p)
    assert back.params == recovered.params
    np.testing.assert_array_equal(back.samples_matrix(), recovered.samples_matrix())


def test_identifiability_warning_when_one_decade_of_N():
    table = chinchilla_grid(6, 6, noise=0.01, seed=4, n_range=(1e8, 5e8), tokens_per_param=(10, 30))
    r = fit(table, "chinchilla", bootstrap=50)
    assert any("decades" in w or "cannot be separated" in w for w in r.diagnostics["warnings"])


def test_bootstrap_reproducible_across_thread_counts():
    table = chinchilla_grid(6, 6, noise=0.01, seed=5)
    a = fit(table, "chinchilla", bootstrap=120, seed=3, jobs=1)
    b = fit(table, "chinchilla", bootstrap=120, seed=3, jobs=2)
    np.testing.assert_allclose(a.samples_matrix(), b.samples_matrix(), rtol=1e-12)


def test_config_and_law_must_agree():
    from scalinglab.fitting.api import FitConfig

    table = chinchilla_grid(5, 5, noise=0.0, seed=0)
    with pytest.raises(InputError, match="law 'kaplan' disagrees with config.law 'chinchilla'"):
        fit(table, "kaplan", config=FitConfig(law="chinchilla"))
    # The config's law is honoured when no law is given; keyword overrides apply on top of a config.
    r = fit(table, config=FitConfig(law="chinchilla", huber_delta=1e-2), huber_delta=1e-3)
    assert r.law == "chinchilla" and r.huber_delta == 1e-3
    assert r.params["alpha"] == pytest.approx(CHINCHILLA_PUBLISHED["alpha"], rel=1e-3)
