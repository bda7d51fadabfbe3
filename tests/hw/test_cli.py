"""`scalinglab doctor` prints capabilities, measured speeds, choices and the cache path (text and JSON)."""

import json

from tests.hw.fakes import AVX2, make_calibration
from typer.testing import CliRunner

from scalinglab.cli import app
from scalinglab.hw import dispatch as D


def test_doctor_json_and_text(monkeypatch):
    runner = CliRunner()
    with D.injected(make_calibration(**AVX2)):
        r = runner.invoke(app, ["doctor", "--json"])
        assert r.exit_code == 0, r.output
        rep = json.loads(r.output)
        assert rep["choices"]["int8_path"] == "fbgemm" and rep["choices"]["int8_activation_bits"] == 7
        assert rep["choices"]["auto_bf16_min_width"] is None and rep["choices"]["float_default"] == "fp32"
        assert rep["gflops"]["fp32"][1] == 2 * 256 * 1024**2 / 24.0 / 1e6
        assert rep["cache_path"].endswith(".json") and rep["capabilities"]["threads"] >= 1
        text = runner.invoke(app, ["doctor"]).output
    assert "int8 linears   fbgemm (7-bit activation codes)" in text
    assert "precision auto fp32 at every width" in text and "skipped" in text
