"""The fused int8 kernels against plain torch references."""

from __future__ import annotations

import pytest
import torch

from scalinglab.kernels import int8_matmul as K
from scalinglab.quant.primitives import absmax_quantize

SHAPES = [(1, 64, 48), (7, 33, 5), (64, 256, 192)]
SHAPE_IDS = ["M1-K64-N48", "M7-K33-N5", "M64-K256-N192"]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("qmax", [127, 31, 7], ids=["8bit", "6bit", "4bit"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_quantize_rows_matches_reference(shape, qmax, gen):
    m, k, _ = shape
    x = torch.randn(m, k, generator=gen) * 3
    skip = torch.rand(k, generator=gen) < 0.1
    for sk in (None, skip):
        q, s = K.quantize_rows(x, qmax, sk)
        qr, sr = K.quantize_rows_reference(x, qmax, sk)
        assert torch.equal(s, sr)
        assert torch.equal(q, qr)


def test_quantize_rows_zero_row_is_guarded():
    x = torch.zeros(3, 16)
    x[1] = torch.linspace(-1, 1, 16)
    q, s = K.quantize_rows(x, 127)
    assert torch.isfinite(s).all() and s[0] == 1.0 and s[2] == 1.0
    assert (q[0] == 0).all() and q[1].abs().max() == 127


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_quantize_channels_matches_reference_and_saturates(shape, gen):
    m, k, _ = shape
    x = torch.randn(m, k, generator=gen) * 4
    shift = torch.randn(k, generator=gen)
    inv = 1 / (torch.rand(k, generator=gen) + 0.01)
    q = K.quantize_channels(x, shift, inv, 31)
    assert torch.equal(q, K.quantize_channels_reference(x, shift, inv, 31))
    assert q.abs().max() <= 31


def test_column_amax_and_int_mm(gen):
    x = torch.randn(37, 70, generator=gen)
    assert torch.equal(K.column_amax(x), x.abs().amax(0))
    a = torch.randint(-127, 128, (37, 70), generator=gen, dtype=torch.int8)
    b = torch.randint(-127, 128, (70, 19), generator=gen, dtype=torch.int8)
    assert torch.equal(K.int_mm(a, b), a.int() @ b.int())


@pytest.mark.parametrize("per_row", [True, False], ids=["per-row", "per-tensor"])
def test_dequantize_epilogue_matches_reference(per_row, gen):
    acc = torch.randint(-50000, 50000, (9, 13), generator=gen, dtype=torch.int32)
    sx = torch.rand(9 if per_row else 1, generator=gen)
    sw, b = torch.rand(13, generator=gen), torch.randn(13, generator=gen)
    ref = acc.float() * (sx[:, None] * sw[None, :]) + b
    torch.testing.assert_close(K.dequantize_epilogue(acc, sx, sw, b), ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("n_outliers", [0, 1, 5], ids=["no-outliers", "1-outlier", "5-outliers"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_llm_int8_decomposition_matches_reference_formula(shape, n_outliers, gen):
    m, k, n = shape
    x = torch.randn(m, k, generator=gen)
    cols = torch.randperm(k, generator=gen)[:n_outliers]
    x[:, cols] *= 20  # |x| ≥ 6 somewhere in each of these columns
    w, b = torch.randn(n, k, generator=gen) / k**0.5, torch.randn(n, generator=gen)
    wq, sw = absmax_quantize(w, 8, -1)
    slot = torch.full((k,), -1, dtype=torch.int32)
    slot[cols] = torch.arange(len(cols), dtype=torch.int32)
    y = K.llm_int8_matmul(x, wq.t().contiguous(), sw.reshape(-1), b, 6.0, slot, w[:, cols].t().contiguous())
    ref = K.llm_int8_matmul_reference(x, w, b, 6.0)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)


def test_llm_int8_unseen_outlier_uses_dequantized_column(gen):
    x = torch.randn(8, 32, generator=gen)
    x[0, 3] = 50.0
    w, b = torch.randn(16, 32, generator=gen), torch.zeros(16)
    wq, sw = absmax_quantize(w, 8, -1)
    slot = torch.full((32,), -1, dtype=torch.int32)
    y = K.llm_int8_matmul(x, wq.t().contiguous(), sw.reshape(-1), b, 6.0, slot, torch.zeros(0, 16))
    w_dq = wq.float() * sw
    ref = K.llm_int8_matmul_reference(x, w_dq, b, 6.0)  # same formula with the dequantized weight
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)
