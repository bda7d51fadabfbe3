"""Data-driven Huber δ and the coverage simulation behind docs/fitting.md's table (a small, fast version)."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.api import FitConfig, fit
from scalinglab.fitting.coverage import QUANTITIES, CoverageConfig, simulate_coverage, truth
from scalinglab.fitting.objective import HUBER_DELTA, auto_delta, parse_delta, robust_scale
from scalinglab.fitting.synthetic import chinchilla_grid


def test_robust_scale_estimates_sigma_and_ignores_outliers():
    r = np.random.default_rng(0).normal(0.0, 0.02, 4000)
    assert robust_scale(r) == pytest.approx(0.02, rel=0.05)
    r[:400] += 5.0  # 10 % gross outliers move the standard deviation ×80, the MAD by a few %
    assert robust_scale(r) == pytest.approx(0.02, rel=0.2)
    assert auto_delta(r) == pytest.approx(1.345 * robust_scale(r))
    assert auto_delta(np.zeros(10)) > 0  # noise-free data: a tiny positive δ, not 0


@pytest.mark.parametrize("bad", ["", "fast", "nan", "-1", "0", "inf", True, -0.5])
def test_bad_delta_is_one_line_input_error(bad):
    with pytest.raises(InputError, match="--huber-delta"):
        parse_delta(bad)


def test_delta_spellings():
    assert parse_delta("AUTO") == "auto" and parse_delta("1e-3") == 1e-3 and parse_delta(0.01) == 0.01
    assert FitConfig(huber_delta="auto").huber_delta == "auto"


def test_auto_delta_fit_tracks_the_noise_and_records_the_rule():
    table = chinchilla_grid(8, 10, noise=0.02, seed=3)
    published = fit(table, "chinchilla")
    auto = fit(table, "chinchilla", huber_delta="auto")
    assert published.huber_delta == HUBER_DELTA and "huber_delta_auto" not in published.diagnostics
    assert auto.huber_delta == pytest.approx(1.345 * 0.02, rel=0.3)
    assert auto.diagnostics["huber_delta_auto"]["delta"] == auto.huber_delta
    # the data-driven δ refits: a different optimum of a different objective
    assert auto.params["alpha"] != published.params["alpha"]


def test_coverage_simulation_counts_hits_at_each_level():
    cfg = CoverageConfig(n_sets=10, n_boot=50, n_sizes=6, n_tokens=8, levels=(0.5, 0.95), seed=1)
    res = simulate_coverage(cfg)
    assert len(res.deltas) == 10 and res.failed_refits == 0
    assert np.median(res.deltas) == pytest.approx(1.345 * cfg.noise, rel=0.3)
    pooled = {lv: np.mean([res.coverage(lv, q) for q in QUANTITIES]) for lv in cfg.levels}
    # Loose bands (10 data sets): they catch a broken simulation or intervals off by a wide margin.
    assert 0.25 <= pooled[0.5] <= 0.75, pooled
    assert pooled[0.95] >= 0.8, pooled
    for q in QUANTITIES:  # a 95 % interval is wider than a 50 % one on every data set
        assert np.all(np.array(res.widths[0.95][q]) > np.array(res.widths[0.5][q]))
    assert truth()["loss_extrapolated"] == pytest.approx(1.9366, abs=1e-3)


def test_cli_huber_delta_option(tmp_path, capsys):
    from scalinglab import data as bundled
    from scalinglab.cli import main

    src = str(bundled.path(bundled.GEMSTONES))
    try:
        main(["fit", src, "--huber-delta", "nope"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "--huber-delta: 'nope' is not a number or 'auto'" in capsys.readouterr().err
    try:
        main(["fit", src, "--huber-delta", "auto", "--out", str(tmp_path / "fit.json")])
    except SystemExit as exc:
        assert exc.code == 0
    assert "auto: 1.345 × MAD of residuals" in capsys.readouterr().out
    assert (tmp_path / "fit.json").exists()
