"""The softmax benchmark produces its table (tiny shapes here; the real run is benchmarks/softmax.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from scalinglab.cli import app
from scalinglab.kernels import softmax_bench
from scalinglab.kernels.softmax_bench import (
    cache_label,
    cache_sizes,
    format_cross_entropy,
    format_softmax,
    format_targets,
    round_robin_seconds,
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
    assert {"two-pass +alloc", "torch.softmax +alloc"} <= {r.method for r in rows}


def test_cache_labels_and_targets_text():
    caches = {"L1": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
    assert cache_label((1, 1000), 4, caches) == "in L2"
    assert cache_label((1, 1_000_000), 4, caches) == "in L3"
    assert cache_label((64, 262_144), 4, caches).startswith("rows in L3")
    assert cache_label((1, 10_000_000), 4, caches).startswith("out of cache")
    assert cache_label((1, 10), 4, {}) == "cache sizes unknown"
    assert all(v > 0 for v in cache_sizes().values())
    from scalinglab.kernels.softmax_bench import Row

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
    text = format_cross_entropy(run_cross_entropy(((16, 64),), reps=1))
    assert "16" in text and "speed-up" in text


def test_cli_registers_bench_softmax():
    result = CliRunner().invoke(app, ["bench", "softmax", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output
