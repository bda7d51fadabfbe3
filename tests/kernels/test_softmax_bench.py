"""The softmax benchmark: every timed method computes the softmax, and its table's rates and ratios follow from
the measured times (tiny shapes here; the real run is benchmarks/softmax.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scalinglab.cli import app
from scalinglab.kernels import softmax_bench
from scalinglab.kernels.softmax_bench import (
    Row,
    cache_label,
    cache_sizes,
    format_cross_entropy,
    format_softmax,
    format_targets,
    round_robin_seconds,
    run_cross_entropy,
    run_softmax,
)


def test_every_benchmarked_method_computes_the_softmax():
    # The table compares like with like only if every timed callable returns the same softmax.
    import numpy as np

    from scalinglab.kernels.softmax_bench import _methods

    x = (np.random.default_rng(3).standard_normal((3, 517)) * 4).astype(np.float32)
    ref = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    methods = _methods(x)
    assert set(methods) == {"two-pass", "online", "three-pass-reload", "three-pass-recompute", "two-pass +alloc",
                            "scipy.special.softmax", "numpy exp/sum", "torch.softmax", "torch.softmax +alloc"}
    for name, fn in methods.items():
        y = np.asarray(fn())
        np.testing.assert_allclose(y, ref, rtol=2e-5, atol=1e-7, err_msg=name)


def test_rows_and_ratios_follow_from_the_timings():
    shape = (2, 300)
    rows = run_softmax((shape,), reps=1)
    nbytes = 4 * shape[0] * shape[1]
    for r in rows:
        assert r.elements_per_s == pytest.approx(shape[0] * shape[1] / r.seconds)
        assert r.eff_gbs == pytest.approx(2 * nbytes / r.seconds / 1e9)
        traffic = softmax_bench.TRAFFIC.get(r.method)
        assert r.traffic_gbs == (pytest.approx(traffic * nbytes / r.seconds / 1e9) if traffic else None)
    # The speed-up line is the ratio of the medians: known timings give known text.
    secs = {"two-pass": 1.0, "three-pass-reload": 1.5, "three-pass-recompute": 1.25, "online": 2.0,
            "scipy.special.softmax": 4.0, "numpy exp/sum": 3.0, "torch.softmax": 0.5, "torch.softmax +alloc": 0.9,
            "two-pass +alloc": 1.8}
    known = [Row(shape, m, t, 1.0, 1.0, 3.0 if m == "two-pass" else None) for m, t in secs.items()]
    text = format_softmax(known, copy_gbs=10.0, caches={})
    assert ("×1.50 vs three-pass-reload, ×1.25 vs recompute, ×2.00 vs online, ×4.00 vs scipy, ×3.00 vs numpy, "
            "×0.50 vs torch (+alloc both: ×0.50)") in text
    assert " 30%" in text  # two-pass traffic 3 GB/s of a 10 GB/s copy


def test_cache_labels_and_targets_text():
    caches = {"L1": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
    assert cache_label((1, 1000), 4, caches) == "in L2"
    assert cache_label((1, 1_000_000), 4, caches) == "in L3"
    assert cache_label((64, 262_144), 4, caches).startswith("rows in L3")
    assert cache_label((1, 10_000_000), 4, caches).startswith("out of cache")
    assert cache_label((1, 10), 4, {}) == "cache sizes unknown"
    assert all(v > 0 for v in cache_sizes().values())
    names = ["two-pass", "three-pass-reload", "scipy.special.softmax", "torch.softmax", "torch.softmax +alloc", "two-pass +alloc"]
    secs = [1.0, 1.5, 3.0, 0.5, 0.6, 1.2]
    rows = [Row((1, 10_000_000), m, t, 1e7 / t, 0.08 / t, 0.12 / t) for m, t in zip(names, secs, strict=True)]
    text = format_targets(rows, copy_gbs=0.15, caches=caches)
    assert "×1.50 vs three-pass-reload (≥ 1.2): met" in text
    assert "×3.00 vs scipy (≥ 2): met" in text and "×0.50 vs torch" in text and "NOT met" in text


def test_round_robin_samples_every_method():
    calls = {"a": 0, "b": 0}

    def bump(k):
        calls[k] += 1

    times = round_robin_seconds({"a": lambda: bump("a"), "b": lambda: bump("b")}, reps=3)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values()) and min(calls.values()) >= 5


def test_round_robin_shuffles_the_order(monkeypatch):
    monkeypatch.setattr(softmax_bench, "_calls_per_sample", lambda fn: 1)
    order = []
    round_robin_seconds({k: (lambda k=k: order.append(k)) for k in "abcd"}, reps=8)
    repeats = ["".join(order[i : i + 4]) for i in range(0, 32, 4)]
    assert all(sorted(r) == list("abcd") for r in repeats)  # every fn once per repeat
    predecessors = {r[r.index("a") - 1] for r in repeats if not r.startswith("a")}
    assert len(predecessors) > 1  # 'a' does not always follow the same fn


def test_cross_entropy_table():
    results = run_cross_entropy(((16, 64),), reps=1)
    assert [shape for shape, *_ in results] == [(16, 64)] and all(t > 0 for _, *ts in results for t in ts)
    text = format_cross_entropy([((16, 64), 0.002, 0.003), ((512, 32_000), 0.010, 0.005)])
    assert "    16      64    2.000ms    3.000ms     1.50×" in text
    assert "   512   32000   10.000ms    5.000ms     0.50×" in text


def test_cli_registers_bench_softmax():
    result = CliRunner().invoke(app, ["bench", "softmax", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output
