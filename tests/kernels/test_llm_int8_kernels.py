"""The fused LLM.int8 passes against the plain reference: outlier scan + codes, epilogues with outliers."""

import pytest
import torch

from scalinglab.kernels import int8_matmul as K
from scalinglab.kernels import llm_int8_kernels as L


def _case(m=9, k=40, n=24, outliers=(3, 17), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    x[1, list(outliers)] = torch.tensor([9.0, -12.0])[: len(outliers)]
    w = torch.randn(n, k, generator=g) / k**0.5
    return x, w, torch.randn(n, generator=g)


@pytest.mark.parametrize("qmax", [127, 63], ids=["8bit", "7bit"])
def test_scan_quantize_matches_reference(qmax):
    x, _, _ = _case()
    col_slot = torch.full((40,), -1, dtype=torch.int32)
    col_slot[[3, 17]] = torch.tensor([0, 1], dtype=torch.int32)
    q, s, cols, kept = L.scan_quantize(x, 6.0, qmax, col_slot)
    outlier = (x.abs() >= 6.0).any(0)
    q_ref, s_ref = K.quantize_rows_reference(x, qmax, outlier)
    assert torch.equal(q, q_ref) and torch.allclose(s, s_ref) and cols.tolist() == [3, 17] and kept
    col_slot[17] = -1  # an outlier dim calibration never saw
    assert L.scan_quantize(x, 6.0, qmax, col_slot)[3] is False
    codes = torch.empty(9, 40)  # float codes for the fbgemm / dequant paths
    L.scan_quantize(x, 6.0, qmax, col_slot, out=codes)
    assert torch.equal(codes, q_ref.float())


@pytest.mark.parametrize("outliers", [(3, 17), ()], ids=["two-outlier-dims", "none"])
@pytest.mark.parametrize("unseen", [False, True], ids=["all-kept", "one-unseen"])
def test_llm_int8_matmul_matches_reference(outliers, unseen):
    x, w, b = _case(outliers=outliers)
    w_q, sw = K.quantize_rows_reference(w, 127)  # per output channel = per row of W
    seen = [3] if unseen else [3, 17]
    col_slot = torch.full((40,), -1, dtype=torch.int32)
    col_slot[seen] = torch.arange(len(seen), dtype=torch.int32)
    y = K.llm_int8_matmul(x, w_q.t().contiguous(), sw, b, 6.0, col_slot, w[:, seen].t().contiguous())
    ref = K.llm_int8_matmul_reference(x, w, b, 6.0)
    if unseen and outliers:  # column 17 comes from its dequantized int8 codes: within half a weight step
        ref = ref + x[:, [17]] @ (w_q[:, [17]].float() * sw[:, None] - w[:, [17]]).T
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)


def test_rescale_outliers_in_place():
    x, w, b = _case()
    g = torch.Generator().manual_seed(5)
    y = torch.randn(9, 24, generator=g)
    sx = torch.rand(9, generator=g)
    cols = torch.tensor([3, 17])
    col_slot = torch.full((40,), -1, dtype=torch.int32)
    col_slot[cols] = torch.tensor([1, 0], dtype=torch.int32)
    w_o = w[:, [17, 3]].t().contiguous()
    want = y * sx[:, None] + b + x[:, [3, 17]] @ w[:, [3, 17]].T
    torch.testing.assert_close(L.rescale_outliers_(y.clone(), sx, b, x, cols, col_slot, w_o), want)
