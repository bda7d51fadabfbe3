"""The dispatch rules on injected calibrations: each machine kind gets the right path and precision."""

import pytest
from tests.hw.fakes import AVX2, make_calibration

from scalinglab.errors import InputError
from scalinglab.hw import dispatch as D


@pytest.mark.parametrize(
    ("cal", "path", "full_range"),
    [
        (make_calibration(), "int_mm", True),
        (make_calibration(**AVX2), "fbgemm", False),
        (make_calibration(int8={"int_mm": (2.0, 20.0), "fbgemm": (1.5, 8.0), "dequant": (1.0, 10.0)}), "dequant", True),
        (make_calibration(int8={"dequant": (1.0, 10.0)}), "dequant", True),
        (make_calibration(int8={"int_mm": (0.5, None), "fbgemm": (0.9, 9.0), "dequant": (1.0, 10.0)}), "fbgemm", True),
    ],
    ids=["vnni-int_mm", "avx2-fbgemm-7bit", "nothing-beats-fp32", "no-int8-path", "given-up-counts-as-slow"],
)
def test_int8_path_is_the_best_worst_case(cal, path, full_range):
    plan = D.choose_int8_path(cal)
    assert (plan.path, plan.full_range) == (path, full_range)


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
        assert D.int8_plan() == D.Int8Plan("fbgemm", False, "forced by SCALINGLAB_INT8_PATH")
        monkeypatch.setenv("SCALINGLAB_INT8_PATH", "cublas")
        with pytest.raises(InputError, match="SCALINGLAB_INT8_PATH='cublas'"):
            D.int8_plan()


def test_a_noisy_calibration_is_replaced_on_a_quiet_machine():
    import dataclasses

    noisy = dataclasses.replace(make_calibration(), load=3.0)
    assert D.provisional(noisy, load_now=0.2) and not D.provisional(noisy, load_now=2.0)
    assert not D.provisional(make_calibration(), load_now=0.0)  # measured quiet: kept
