"""The softmax benchmark produces its table (tiny shapes here; the real run is benchmarks/softmax.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from scalinglab.cli import app
from scalinglab.kernels.softmax_bench import (
    format_cross_entropy,
    format_softmax,
    run_cross_entropy,
    run_softmax,
)


def test_table_has_every_method_and_the_ratios():
    rows = run_softmax(((2, 300),), reps=1)
    assert {r.method for r in rows} >= {"two-pass", "online", "three-pass-reload", "three-pass-recompute",
                                         "scipy.special.softmax", "numpy exp/sum", "torch.softmax"}
    assert all(r.seconds > 0 and r.elements_per_s > 0 for r in rows)
    text = format_softmax(rows, copy_gbs=10.0)
    assert "copy bandwidth" in text and "vs three-pass-reload" in text and "%copy" in text


def test_cross_entropy_table():
    text = format_cross_entropy(run_cross_entropy(((16, 64),), reps=1))
    assert "16" in text and "speed-up" in text


def test_cli_registers_bench_softmax():
    result = CliRunner().invoke(app, ["bench", "softmax", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output
