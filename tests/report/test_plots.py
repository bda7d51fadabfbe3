"""Fit plots: the extrapolation band is the bootstrap interval at the fit's own confidence level."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scalinglab.fitting.api import fit
from scalinglab.fitting.synthetic import chinchilla_grid
from scalinglab.report import plots


@pytest.fixture(scope="module")
def fitted():
    return fit(chinchilla_grid(5, 5, noise=0.01, seed=2), "chinchilla", bootstrap=20, seed=0)


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_band_uses_the_fit_level(tmp_path, monkeypatch, fitted, level):
    fit_at = dataclasses.replace(fitted, bootstrap=dataclasses.replace(fitted.bootstrap, level=level))
    seen, real = [], plots.percentile_ci

    def spy(samples, lvl):
        lo, hi = real(samples, lvl)
        seen.append((samples, lvl, lo, hi))
        return lo, hi

    monkeypatch.setattr(plots, "percentile_ci", spy)
    out = plots.plot_fit(fit_at, chinchilla_grid(5, 5, noise=0.01, seed=2), tmp_path / "fit.png")
    assert out.is_file() and out.stat().st_size > 1000
    ((band, lvl, lo, hi),) = seen
    assert lvl == level and np.all(hi > lo)  # one band, at the fit's level, over every compute of the grid
    tail = 100 * (1 - level) / 2
    np.testing.assert_allclose(lo, np.nanpercentile(band, tail, axis=0))
    np.testing.assert_allclose(hi, np.nanpercentile(band, 100 - tail, axis=0))
