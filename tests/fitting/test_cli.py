"""The fit / predict / plan commands as a user runs them: real files, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.cli_run import run

from scalinglab.fitting.synthetic import chinchilla_grid


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "runs.csv"
    chinchilla_grid(6, 8, noise=0.005, seed=11)[["params", "tokens", "loss"]].to_csv(p, index=False)
    return p


def test_fit_writes_json_from_plain_csv(runs_csv, tmp_path, capsys):
    out = tmp_path / "fit.json"
    code, stdout, _ = run(["fit", str(runs_csv), "--law", "chinchilla", "--out", str(out)], capsys)
    assert code == 0
    data = json.loads(out.read_text())
    assert data["law"] == "chinchilla" and data["n_points"] == 48
    assert data["params"]["alpha"] == pytest.approx(0.34, abs=0.05)
    assert "alpha" in stdout


def test_fit_with_column_map_gives_the_same_fit(runs_csv, tmp_path, capsys):
    import pandas as pd

    renamed = tmp_path / "renamed.csv"
    pd.read_csv(runs_csv).rename(columns={"params": "Model Size", "tokens": "Tokens seen", "loss": "final"}).to_csv(
        renamed, index=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    run(["fit", str(runs_csv), "--out", str(a)], capsys)
    code, _, _ = run(["fit", str(renamed), "--columns", 'params="Model Size",tokens="Tokens seen",loss=final',
                      "--out", str(b)], capsys)
    assert code == 0
    assert json.loads(a.read_text())["params"] == json.loads(b.read_text())["params"]


def test_predict_and_plan(runs_csv, tmp_path, capsys):
    fit_json = tmp_path / "fit.json"
    run(["fit", str(runs_csv), "--bootstrap", "50", "--out", str(fit_json), "--plot", str(tmp_path / "fit.png")], capsys)
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    code, stdout, _ = run(["predict", str(fit_json), "--params", "7e10", "--tokens", "1.4e12", "--json"], capsys)
    pred = json.loads(stdout)
    assert code == 0 and pred["interval"][0] < pred["loss"] < pred["interval"][1]
    code, stdout, _ = run(["plan", str(fit_json), "--flops", "1e24", "--json"], capsys)
    plan = json.loads(stdout)
    assert plan["params"] * plan["tokens"] * 6 == pytest.approx(1e24)
    assert plan["intervals"]["params"][0] < plan["params"] < plan["intervals"]["params"][1]
    code, stdout, _ = run(["plan", str(fit_json), "--target-loss", "2.2", "--json"], capsys)
    assert json.loads(stdout)["loss"] == pytest.approx(2.2, rel=1e-6)


@pytest.mark.parametrize(
    "content, argv_extra, message",
    [
        ("params,tokens\n1,2\n", [], "missing column 'loss'"),
        ("params,tokens,loss\n1e8,2e9,x\n", [], "row 1, field 'loss': 'x' is not a number"),
        ("params,tokens,loss\n1e8,2e9,3\n2e8,2e9,2.9\n", [], "need at least 6 rows"),
        ("params,tokens,loss\n1e8,2e9,3\n", ["--law", "nope"], "unknown law 'nope'"),
        ("params,tokens,loss\n1e8,2e9,3\n", ["--holdout", "biggest=2"], "largest-compute=K"),
    ],
    ids=["missing-column", "non-numeric", "too-few-rows", "unknown-law", "bad-holdout"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, argv_extra, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    code, _, stderr = run(["fit", str(p), *argv_extra], capsys)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_console_script_reports_missing_file_without_traceback(tmp_path):
    import os
    from pathlib import Path

    import scalinglab

    env = dict(os.environ, PYTHONPATH=str(Path(scalinglab.__file__).parents[1]))  # this checkout's package
    res = subprocess.run([sys.executable, "-m", "scalinglab", "fit", str(tmp_path / "none.csv")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "no such file" in res.stderr and "Traceback" not in res.stderr
