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
        ch = rep["choices"]
        assert ch["int8_paths"] == {"M=1": "gemv", "M≤16": "fbgemm", "M>16": "fbgemm"}
        assert ch["int8_activation_bits"] == {"M=1": 8, "M≤16": 7, "M>16": 7}
        assert ch["auto_bf16_min_width"] is None and ch["float_default"] == "fp32"
        assert ch["cross_entropy_kernel_min_elements"] == {"64": None, "256": 1 << 18, "1024": 1 << 16, "16384": 1 << 14}
        assert rep["gflops"]["fp32"][2] == 2 * 256 * 1024**2 / 24.0 / 1e6
        assert rep["cache_path"].endswith(".json") and rep["capabilities"]["threads"] >= 1
        text = runner.invoke(app, ["doctor"]).output
    assert "int8 linears   M=1 gemv (8-bit), M≤16 fbgemm (7-bit), M>16 fbgemm (7-bit)" in text
    assert "int_mm inexact here" in text
    assert "precision auto fp32 at every width" in text and "skipped" in text
    assert "cross-entropy  our kernel where V≥64: never, V≥256: N·V ≥ 262,144" in text
    from scalinglab.kernels import wo_bf16

    wo = ch["weight_only_bf16"]
    assert wo["kernel_available"] == {"4": wo_bf16.available(4), "8": wo_bf16.available(8)}
    assert ("W4 on the bf16 dot-product kernel, every M" in text) == wo_bf16.available(4)
    assert f"weight-only    bf16 activations: W4 on the {wo['W4']}; W8/W6 on the {wo['W8/W6']}" in text
