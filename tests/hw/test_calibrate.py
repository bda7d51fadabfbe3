"""The calibration cache: round trip, atomic write under XDG_CACHE_HOME, rejection of bad files."""

import json

import pytest
from tests.hw.fakes import make_calibration

from scalinglab.hw import calibrate as C
from scalinglab.hw import dispatch as D
from scalinglab.hw.capabilities import detect


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    D.reset()
    yield tmp_path
    D.reset()


def _cal_for_this_machine():
    return make_calibration(key=detect().cache_key())


def test_round_trip_under_xdg_cache_home(cache_home):
    caps = detect()
    cal = _cal_for_this_machine()
    path = C.save(cal, caps)
    assert path.parent == cache_home / "scalinglab" and path.name == f"hw-{caps.cache_key()}.json"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".hw-")] == []  # no temporary left
    assert C.load_cached(caps) == cal
    assert D.calibration() == cal  # read from the file, not measured


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(gemm_fp32_ms=[1.0, -2.0, 3.0]), "negative"),
        (lambda d: d.update(gemm_fp32_ms=[1.0, None, 3.0]), "null fp32"),
        (lambda d: d.update(gemm_fp32_ms=[1.0, 2.0]), "two buckets"),
        (lambda d: d.update(train_bf16_ms=[1.0]), "short"),
        (lambda d: d["int8_ms"].pop("dequant"), "no dequant"),
        (lambda d: d["int8_ms"].update(tpu=[1.0, 1.0, 1.0]), "unknown path"),
        (lambda d: d["int8_ms"].update(gemv=[1.0, 1.0]), "short gemv"),
        (lambda d: d.update(fbgemm_full_range="yes"), "bool"),
        (lambda d: d.pop("int_mm_exact"), "no int_mm exactness"),
        (lambda d: d.update(ce_kernel_ms=d["ce_kernel_ms"][:-1]), "short ce"),
        (lambda d: d.update(ce_torch_ms=[float("nan")] * len(d["ce_torch_ms"])), "nan ce"),
        (lambda d: d.update(ce_shapes=[[1, 2]]), "other ce shapes"),
        (lambda d: d.pop("cpu_seconds"), "no cpu seconds"),
        (lambda d: d.update(gemm_ms=[1, 2]), "other shapes"),
        (lambda d: d.update(key="someone-else"), "key"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_files_are_ignored(cache_home, edit, why):
    caps = detect()
    d = _cal_for_this_machine().to_dict()
    edit(d)
    path = C.cache_path(caps)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(d))
    assert C.load_cached(caps) is None


def test_an_old_format_cache_is_measured_again_not_misread(cache_home, monkeypatch):
    """A version-1 file (two batch sizes, no gemv, no cross-entropy) is ignored and the machine measured."""
    caps = detect()
    old = {"key": caps.cache_key(), "capabilities": {}, "created": 0.0, "seconds": 1.0, "load": 0.1, "version": 1,
           "gemm_ms": [16, 256], "gemm_d": 1024, "train_widths": [128, 256, 512, 1024],
           "gemm_fp32_ms": [0.5, 5.0], "gemm_bf16_ms": [0.3, 1.4], "fbgemm_full_range": True,
           "int8_ms": {"int_mm": [0.2, 1.0], "dequant": [0.6, 5.7]},
           "train_fp32_ms": [0.5, 1.9, 7.6, 31.0], "train_bf16_ms": [0.3, 0.8, 2.5, 8.8]}
    path = C.cache_path(caps)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    assert C.load_cached(caps) is None
    fresh = _cal_for_this_machine()
    monkeypatch.setattr(C, "measure", lambda caps: fresh)
    assert D.calibration() == fresh
    assert json.loads(path.read_text())["version"] == C.FORMAT_VERSION  # replaced by the new format


def test_garbage_file_is_ignored(cache_home):
    path = C.cache_path(detect())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert C.load_cached(detect()) is None
    path.write_text("[1, 2]")
    assert C.load_cached(detect()) is None


def test_measure_under_no_grad_gives_a_valid_calibration(cache_home, monkeypatch):
    """The real measurement (shortened) from inside torch.no_grad, as a benchmark calls it."""
    import torch

    monkeypatch.setattr(C, "CALL_BUDGET_S", 0.0)
    monkeypatch.setattr(C, "MAX_REPS", 3)
    monkeypatch.setattr(C, "GEMM_D", 128)
    monkeypatch.setattr(C, "TRAIN_WIDTHS", (32, 64, 96, 128))
    monkeypatch.setattr(C, "CE_VOCABS", (64, 256))
    monkeypatch.setattr(C, "CE_ELEMENTS", (1 << 10, 1 << 12))
    with torch.no_grad():
        cal = C.measure(detect())
    assert C.Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert "dequant" in cal.int8_ms and all(t > 0 for t in cal.gemm_fp32_ms + cal.train_fp32_ms)
    assert cal.int8_ms["gemv"][:2] != (None, None) and cal.int8_ms["gemv"][-1] is None  # few-row path only
    assert len(cal.ce_kernel_ms) == len(cal.ce_torch_ms) == 4 and cal.cpu_seconds > 0
