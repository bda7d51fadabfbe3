"""`scalinglab demo`: the bundled-data part end to end through the CLI, and the shape of its ladders."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalinglab.cli import app
from scalinglab.ladder.demo import TOKENS, demo_spec


def test_demo_fits_forecasts_plans_and_plots_the_bundled_runs(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--bootstrap", "50", "--no-ladder"])
    assert res.exit_code == 0, res.output
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["law"] == "chinchilla" and fit["n_points"] == 199 and fit["bootstrap"]["n"] == 50
    assert fit["params"]["alpha"] == pytest.approx(0.3004, abs=2e-3)  # the published Gemstones fit
    assert fit["params"]["beta"] == pytest.approx(0.5802, abs=2e-3)
    for name in ("fit.png", "holdout.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "held-out check (largest-compute=10)" in res.output and "compute-optimal plan" in res.output
    assert (tmp_path / "report.html").stat().st_size > 1_000_000 and "report: " in res.output
    chain = json.loads((tmp_path / "chain.json").read_text())  # the OLMo ladder → 13B HellaSwag chain
    assert chain["kind"] == "chain" and chain["runs"] == 16 and "HellaSwag accuracy: predicted" in res.output


@pytest.mark.parametrize("scale", ["demo", "full"])
def test_demo_ladders_span_five_sizes_and_at_least_three_budgets(scale):
    spec = demo_spec(scale)
    widths = {job.model.d_model for job in spec.jobs}
    budgets = {job.train.tokens for job in spec.jobs}
    assert len(widths) == 5 and len(budgets) == len(TOKENS[scale]) >= 3
    assert len(spec.jobs) == 5 * len(TOKENS[scale])
    assert max(budgets) / min(budgets) >= 9  # about a decade of D or more
