"""Every int8 path of QuantLinear (torch._int_mm, fbgemm at 8 and 7 bits, the fused few-row gemv kernel,
dequantize-to-float) within the
same bit-width bound as the plain reference — each path is forced, whatever this machine would choose.

The 7-bit fbgemm path (CPUs without VNNI, where 8-bit codes would saturate fbgemm's int16 pairs) has an
activation step (q/63)× coarser, so its bound is the 8-bit bound scaled by that ratio (the bound is
linear in the activation step up to the step·step term, which scales no faster). The dequant path does
quantizes activations exactly as the int8 paths do and multiplies the integer codes in fp32: same result.
"""

from __future__ import annotations

import pytest
import torch
from tests.hw.fakes import make_calibration
from tests.quant.test_linear import CASE_IDS, CASES, FLOAT_TOL, _data, _run

from scalinglab.hw import dispatch as D
from scalinglab.kernels.int8_backends import REDUCED_QMAX, fbgemm_available
from scalinglab.quant.methods.rtn import RTNConfig, rtn_linear
from scalinglab.quant.primitives import qmax_for_bits

PATHS = [("int_mm", True), ("fbgemm", True), ("fbgemm", False), ("gemv", True), ("dequant", True)]
PATH_IDS = ["int_mm", "fbgemm-8bit", "fbgemm-7bit", "gemv", "dequant"]


@pytest.fixture(params=PATHS, ids=PATH_IDS)
def path(request, monkeypatch):
    name, full = request.param
    if name == "fbgemm" and not fbgemm_available():
        pytest.skip("this torch build has no fbgemm engine")
    monkeypatch.setenv("SCALINGLAB_INT8_PATH", name)
    with D.injected(make_calibration(full_range=full)):
        yield name, full


ONE_TOKEN = [("rtn-token", 8), ("rtn-tensor", 6), ("rtn-static", 8), ("outliertune", 4), ("llm.int8", 8)]


def _cases():
    for case, case_id in zip(CASES, CASE_IDS, strict=True):
        yield pytest.param(*case, 17, id=f"{case_id}-M17")
        if case in ONE_TOKEN:
            yield pytest.param(*case, 1, id=f"{case_id}-M1")


@pytest.mark.parametrize(("method", "bits", "m"), list(_cases()))
def test_every_path_within_the_bit_width_bound(path, method, bits, m):
    name, full = path
    x, w, b = _data((m, 96, 128))
    ref = x @ w.T + b
    y, bound = _run(method, bits, x, w, b)
    qmax = qmax_for_bits(bits)
    if name == "fbgemm" and not full:
        bound = bound * (qmax / min(qmax, REDUCED_QMAX))
    err = (y - ref).abs()
    assert (err <= bound + FLOAT_TOL * ref.abs().max()).all(), f"{name}: max excess {(err - bound).max():.3g}"


@pytest.mark.parametrize("method", ["rtn-token", "llm.int8", "rtn-static", "outliertune"])
def test_exact_paths_agree_with_int_mm(method, monkeypatch):
    """fbgemm at full range and dequant compute the same integer product as torch._int_mm: equal up to
    float rounding (so perplexities measured on any of them are the method's own)."""
    names = ("int_mm", "gemv", "dequant", "fbgemm") if fbgemm_available() else ("int_mm", "gemv", "dequant")
    x, w, b = _data((33, 128, 64))
    ys = {}
    for name in names:
        monkeypatch.setenv("SCALINGLAB_INT8_PATH", name)
        with D.injected(make_calibration(full_range=True)):
            ys[name] = _run(method, 8, x, w, b)[0]
    for name in names[1:]:
        torch.testing.assert_close(ys[name], ys["int_mm"], rtol=1e-5, atol=1e-5 * float(ys["int_mm"].abs().max()))


def test_packed_codes_are_the_only_copy_and_survive_state_dict_and_moves():
    if not fbgemm_available():
        pytest.skip("this torch build has no fbgemm engine")
    x, w, b = _data((8, 64, 32))
    lin = rtn_linear(w, b, None, RTNConfig()).set_path("fbgemm", True)
    codes = lin.w_t.clone()
    y = lin(x)
    assert lin.w_t.numel() == 0 and lin.packed_nbytes() >= codes.numel()  # one int8 copy, in fbgemm's layout
    assert torch.equal(lin.state_dict()["w_t"], codes) and torch.equal(lin.codes(), codes)
    fresh = rtn_linear(w * 0, b, None, RTNConfig()).set_path("fbgemm", True)
    fresh(x)  # packed before loading: loading must replace the packed copy too
    fresh.load_state_dict(lin.state_dict())
    torch.testing.assert_close(fresh(x), y)
    lin.to(torch.device("cpu"))  # a move restores the plain buffer
    assert torch.equal(lin.w_t, codes) and lin.packed_nbytes() == 0


def test_one_token_and_batches_take_their_buckets_paths_and_agree(monkeypatch):
    """A plan mixing paths per batch size (gemv for one token, fbgemm for batches, as on AVX2): each
    input takes its bucket's path, a token gives the same answer alone as inside a batch, and the layer
    keeps both weight copies only once both paths ran; checkpoints hold the codes either way."""
    if not fbgemm_available():
        pytest.skip("this torch build has no fbgemm engine")
    monkeypatch.delenv("SCALINGLAB_INT8_PATH", raising=False)
    x, w, b = _data((24, 64, 32))
    calls = []
    from scalinglab.quant import linear as L

    for name in ("_forward_gemv", "_forward_codes", "_forward_int_mm"):
        real = getattr(L.QuantLinear, name)
        monkeypatch.setattr(L.QuantLinear, name, lambda self, *a, _n=name, _r=real: calls.append(_n) or _r(self, *a))
    lin = rtn_linear(w, b, None, RTNConfig()).set_path(("gemv", "fbgemm", "fbgemm"), True)
    codes = lin.w_t.clone()
    batch = lin(x)
    assert calls == ["_forward_codes"] and lin.w_t.numel() == codes.numel()  # a gemv plan keeps w_t when packing
    one = lin(x[3:4])
    assert calls[-1] == "_forward_gemv"
    torch.testing.assert_close(one, batch[3:4], rtol=1e-5, atol=1e-5 * float(batch.abs().max()))
    assert torch.equal(lin.state_dict()["w_t"], codes) and torch.equal(lin.codes(), codes)
    only_fbgemm = rtn_linear(w, b, None, RTNConfig()).set_path("fbgemm", True)
    only_fbgemm(x)
    assert only_fbgemm.w_t.numel() == 0  # one copy, the packed one
    only_fbgemm.set_path(("gemv", "fbgemm", "fbgemm"), True)
    torch.testing.assert_close(only_fbgemm(x[3:4]), one)  # w_t rebuilt from the packed copy
    with pytest.raises(ValueError, match="unknown int8 path"):
        lin.set_path(("gemv", "fbgemm"))


def test_dequant_cache_respects_the_budget(monkeypatch):
    from scalinglab.quant import linear as L

    x, w, b = _data((8, 64, 32))
    monkeypatch.setattr(L._DequantCache, "budget", 64 * 32 * 4)  # room for exactly one float copy
    monkeypatch.setattr(L._DequantCache, "used", 0)
    a = rtn_linear(w, b, None, RTNConfig()).set_path("dequant")
    c = rtn_linear(w, b, None, RTNConfig()).set_path("dequant")
    ya, yc = a(x), c(x)
    assert a.cache_nbytes() == 64 * 32 * 4 and c.cache_nbytes() == 0  # the second dequantizes per call
    torch.testing.assert_close(ya, yc)
