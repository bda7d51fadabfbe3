"""The dispatch rules on injected calibrations: each machine kind gets the right path and precision."""

import pytest
from tests.hw.fakes import AVX2, make_calibration

from scalinglab.errors import InputError
from scalinglab.hw import calibrate as C
from scalinglab.hw import dispatch as D


@pytest.mark.parametrize(
    ("cal", "paths", "full_range"),
    [
        (make_calibration(), ("gemv", "int_mm", "int_mm"), True),
        (make_calibration(**AVX2), ("gemv", "fbgemm", "fbgemm"), False),
        (make_calibration(int8={"int_mm": (0.3, 2.0, 20.0), "fbgemm": (0.2, 1.5, 8.0), "dequant": (0.15, 1.0, 10.0)}),
         ("dequant", "dequant", "fbgemm"), True),
        (make_calibration(int8={"dequant": (0.2, 1.0, 10.0)}), ("dequant",) * 3, True),
        (make_calibration(int8={"int_mm": (0.5, 0.6, None), "fbgemm": (0.9, 0.9, 9.0), "dequant": (1.0, 1.0, 10.0)}),
         ("int_mm", "int_mm", "fbgemm"), True),
        (make_calibration(int8={"int_mm": (0.2, 0.42, 4.0), "fbgemm": (0.2, 0.4, 4.2), "gemv": (0.05, 1.0, None),
                                "dequant": (0.2, 1.1, 10.5)}), ("gemv", "int_mm", "int_mm"), True),
        (make_calibration(int8={"int_mm": (0.2, 0.6, 4.0), "fbgemm": (0.2, 0.4, 4.2), "gemv": (0.05, 1.0, None),
                                "dequant": (0.2, 1.1, 10.5)}), ("gemv", "fbgemm", "int_mm"), True),
    ],
    ids=["vnni-gemv-then-int_mm", "avx2-gemv-then-fbgemm-7bit", "nothing-beats-fp32-small",
         "no-int8-path", "given-up-is-not-a-candidate", "near-tie-keeps-one-weight-copy", "clear-win-takes-two-copies"],
)
def test_int8_path_is_the_fastest_per_batch_bucket(cal, paths, full_range):
    plan = D.choose_int8_path(cal)
    assert (plan.paths, plan.full_range) == (paths, full_range)
    assert plan.path == paths[-1] and [plan.path_for(m) for m in (1, 2, 16, 17, 4096)] == [paths[i] for i in (0, 1, 1, 2, 2)]


def test_buckets_and_description():
    assert [D.bucket(m) for m in (1, 2, 16, 17, 256, 10**6)] == [0, 1, 1, 2, 2, 2]
    plan = D.choose_int8_path(make_calibration(**AVX2))
    assert plan.describe() == "M=1 gemv (8-bit), M≤16 fbgemm (7-bit), M>16 fbgemm (7-bit)"
    assert "int_mm inexact" in plan.reason


@pytest.mark.parametrize(
    ("train_fp32", "train_bf16", "width"),
    [
        ((1.0, 2.0, 4.0, 8.0), (2.0, 1.5, 2.0, 3.0), 256),
        ((1.0, 2.0, 4.0, 8.0), (0.5, 1.0, 2.0, 4.0), 128),
        ((1.0, 2.0, 4.0, 8.0), (30.0, None, None, None), None),
        ((1.0, 2.0, 4.0, 8.0), (0.5, 1.0, 5.0, 4.0), 1024),  # a loss at 512: only from 1024 on
        ((1.0, 2.0, 4.0, 8.0), (0.95, 1.9, 3.8, 7.6), None),  # 5% faster is inside the margin
    ],
    ids=["avx512-from-256", "from-128", "avx2-never", "not-monotone", "within-margin"],
)
def test_bf16_min_width(train_fp32, train_bf16, width):
    assert D.bf16_min_width(make_calibration(train_fp32=train_fp32, train_bf16=train_bf16)) == width


def test_use_bf16_and_int8_plan_ask_the_calibration(monkeypatch):
    monkeypatch.delenv("SCALINGLAB_INT8_PATH", raising=False)
    with D.injected(make_calibration(**AVX2)):
        assert not D.use_bf16(4096)
        assert D.int8_plan().path == "fbgemm"
        assert D.int8_plan("cuda").path == "int_mm"  # other devices: not decided from CPU numbers
    with D.injected(make_calibration()):
        assert D.use_bf16(256) and D.use_bf16(300) and not D.use_bf16(128)
        assert not D.use_bf16(4096, device="cuda")


def test_forced_path_and_bad_override(monkeypatch):
    with D.injected(make_calibration(**AVX2)):
        monkeypatch.setenv("SCALINGLAB_INT8_PATH", "int_mm")
        assert D.int8_plan().path == "int_mm"
        monkeypatch.setenv("SCALINGLAB_INT8_PATH", "fbgemm")
        assert D.int8_plan() == D.Int8Plan(("fbgemm",) * 3, False, "forced by SCALINGLAB_INT8_PATH")
        monkeypatch.setenv("SCALINGLAB_INT8_PATH", "cublas")
        with pytest.raises(InputError, match="SCALINGLAB_INT8_PATH='cublas'"):
            D.int8_plan()


def test_a_noisy_calibration_is_replaced_on_a_quiet_machine():
    import dataclasses

    noisy = dataclasses.replace(make_calibration(), load=3.0)
    assert D.provisional(noisy, load_now=0.2) and not D.provisional(noisy, load_now=2.0)
    assert not D.provisional(make_calibration(), load_now=0.0)  # measured quiet: kept


@pytest.mark.parametrize(
    ("ce", "want"),
    [
        ({256: 1 << 18, 1024: 1 << 16, 16384: 1 << 14}, (None, 1 << 18, 1 << 16, 1 << 14)),
        ({64: 1 << 20, 256: 1 << 16, 1024: 1 << 14, 16384: 1 << 14}, (1 << 20, 1 << 16, 1 << 14, 1 << 14)),
        ({}, (None, None, None, None)),
    ],
    ids=["avx512-like", "avx2-like", "torch-always"],
)
def test_cross_entropy_thresholds_come_from_the_calibration(ce, want):
    cal = make_calibration(ce=ce)
    assert D.ce_min_elements(cal) == want
    assert not D.use_ce_kernel(1 << 20, 50, cal)  # below the smallest calibrated vocabulary: torch
    for v, e in zip((64, 256, 1024, 16384), want, strict=True):
        for vocab in (v, 2 * v - 1):  # judged by the largest calibrated vocabulary not above it
            if e is None:
                assert not D.use_ce_kernel(1 << 20, vocab, cal)
                continue
            n_at = -(-e // vocab)  # the fewest rows with N·V ≥ threshold
            assert D.use_ce_kernel(n_at, vocab, cal)
            assert n_at == 1 or not D.use_ce_kernel(n_at - 1, vocab, cal)


def test_a_kernel_loss_at_a_large_size_moves_the_threshold_up():
    import dataclasses

    cal = make_calibration(ce={256: 1 << 14})
    kernel = list(cal.ce_kernel_ms)
    i = C.ce_shapes().index(((1 << 18) // 256, 256))
    kernel[i] = 10 * cal.ce_torch_ms[i]  # lost at N·V = 2^18: wins only from 2^20
    assert D.ce_min_elements(dataclasses.replace(cal, ce_kernel_ms=tuple(kernel)))[1] == 1 << 20
