"""The torch-ops int8 path (what QuantLinear runs on CUDA), checked on the CPU against the numba kernels
and the paper reference: same codes, same outputs, exact padding and fallbacks, and the dispatch that sends
every non-CPU input to it."""

import pytest
import torch

from scalinglab.kernels import int8_matmul as K
from scalinglab.kernels import int8_torch as KT
from scalinglab.kernels.softmax_dispatch import cross_entropy_fastest
from scalinglab.quant.linear import QuantLinear


def _layer(act: str, k: int = 64, n: int = 40) -> tuple[QuantLinear, torch.Tensor]:
    torch.manual_seed(0)
    w, b = torch.randn(n, k) / k**0.5, torch.randn(n)
    sw = w.abs().amax(1) / 127
    wq = torch.round(w / sw[:, None]).to(torch.int8)
    kw = {}
    if act == "static":
        kw = {"act_shift": torch.randn(k) * 0.1, "act_inv_step": torch.full((k,), 127 / 3.0), "act_scale": 3 / 127}
    if act == "llm.int8":
        kw = {"outlier_cols": torch.tensor([3]), "outlier_w": w[:, [3]], "threshold": 6.0}
    return QuantLinear.from_parts(wq, sw, b, act, 8, 8, **kw), w


@pytest.mark.parametrize("act", ["token", "tensor", "static", "llm.int8"])
@pytest.mark.parametrize("m", [1, 5, 40], ids=["M1", "M5", "M40"])
def test_torch_path_matches_the_cpu_kernels(act, m):
    layer, _ = _layer(act)
    x = torch.randn(m, 64)
    x[:, 3] *= 12  # an outlier column (seen at calibration)
    x[:, 9] *= 10 if m > 1 else 1  # one never seen: LLM.int8 falls back to dequantized weights
    torch.testing.assert_close(KT.quant_linear(layer, x), layer(x), rtol=0, atol=1e-5)


def test_llm_int8_matches_paper_reference():
    layer, w = _layer("llm.int8")
    x = torch.randn(24, 64)
    x[:, 3] *= 12
    ref = K.llm_int8_matmul_reference(x, w, layer.bias, 6.0)
    torch.testing.assert_close(KT.quant_linear(layer, x), ref, rtol=1e-4, atol=1e-4)


def test_int_mm_fallback_and_padding_are_exact(monkeypatch):
    g = torch.Generator().manual_seed(1)
    xq = torch.randint(-127, 128, (5, 12), dtype=torch.int8, generator=g)  # K = 12: not a multiple of 8
    w_t = torch.randint(-127, 128, (12, 16), dtype=torch.int8, generator=g)
    exact = (xq.long() @ w_t.long()).int()
    assert torch.equal(KT.int_mm(xq, w_t), exact)
    monkeypatch.setattr(KT, "_pad_needed", lambda xq: True)  # what a CUDA input with M ≤ 16 takes
    xq8, w8 = xq[:, :8].contiguous(), w_t[:8].contiguous()
    out = KT.int_mm(xq8, w8)
    assert out.shape == (5, 16) and torch.equal(out, (xq8.long() @ w8.long()).int())


@pytest.mark.parametrize("act", ["token", "tensor", "static"])
def test_non_cpu_inputs_take_the_torch_path(act):
    """A meta-device layer has no host memory: the numba kernels would fail on it, the torch path runs."""
    layer, _ = _layer(act)
    y = layer.to("meta")(torch.randn(3, 7, 64, device="meta"))
    assert y.shape == (3, 7, 40) and y.device.type == "meta"


def test_cross_entropy_dispatch_falls_back_to_torch_off_cpu():
    logits, tgt = torch.randn(4096, 32000, device="meta"), torch.zeros(4096, dtype=torch.long, device="meta")
    assert cross_entropy_fastest(logits, tgt).device.type == "meta"  # the host kernel would have failed


def test_cuda_weight_relayout_keeps_values_and_saves_row_major(monkeypatch):
    """On CUDA a layer re-lays W_q out K-contiguous on its first call; outputs and saved tensors don't change."""
    layer, _ = _layer("token")
    x = torch.randn(20, 64)
    before = KT.quant_linear(layer, x)
    saved_before = {k: v.clone() for k, v in layer.state_dict().items()}
    monkeypatch.setattr(KT, "_relayout_wanted", lambda w: w.stride(0) != 1)  # what a CUDA weight gets
    after = KT.quant_linear(layer, x)
    assert layer.w_t.shape == (64, 40) and layer.w_t.stride() == (1, 64)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    state = layer.state_dict()
    assert state["w_t"].is_contiguous() and all(torch.equal(state[k], v) for k, v in saved_before.items())
