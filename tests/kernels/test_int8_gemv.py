"""The fused few-row int8 kernel against exact integer references: same codes, same integer product
(int32, exact), same epilogue as the torch._int_mm path."""

from __future__ import annotations

import pytest
import torch

from scalinglab.kernels import int8_gemv as G
from scalinglab.kernels import int8_matmul as K

SHAPES = [(1, 64, 48), (1, 768, 768), (3, 96, 40), (16, 128, 64), (1, 2500, 24)]
SHAPE_IDS = ["M1-K64", "M1-K768", "M3-K96", "M16-K128", "M1-K2500-odd-tail"]


def _case(m, k, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    w_t = torch.randint(-127, 128, (k, n), dtype=torch.int8, generator=g)
    sw = torch.rand(n, generator=g) / 100
    b = torch.randn(n, generator=g)
    return x, w_t, sw, b


def _exact_epilogue(xq, sx, w_t, sw, b):
    """The int_mm path's formula on the exact integer product (float64 holds it exactly)."""
    acc = (xq.double() @ w_t.double()).to(torch.int32)
    return acc.float() * (sx.reshape(-1, 1) * sw) + b


@pytest.mark.parametrize(("m", "k", "n"), SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("qmax", [127, 7], ids=["8bit", "4bit"])
def test_w8a8_is_bit_equal_to_the_exact_integer_path(m, k, n, qmax):
    x, w_t, sw, b = _case(m, k, n)
    xq, sx = K.quantize_rows(x, qmax)
    got = G.w8a8_gemv(x, w_t, sw, b, qmax)
    assert torch.equal(got, _exact_epilogue(xq, sx, w_t, sw, b))


def test_worst_case_codes_stay_exact():
    """Every product ±127·127 over K = 3,000: the sum 48,387,000 is far past float32's 2^24 range of
    consecutive integers (it is one float32 can hold, so the output shows the exact sum)."""
    k = 3000
    x = torch.ones(1, k)
    w_t = torch.full((k, 8), 127, dtype=torch.int8)
    w_t[:, 1] = -127
    got = G.codes_gemv(torch.full((1, k), 127.0), torch.ones(1), w_t, torch.ones(8), torch.zeros(8))
    assert got[0, 0].item() == 127 * 127 * k and got[0, 1].item() == -127 * 127 * k
    xq, sx = K.quantize_rows(x, 127)
    assert torch.equal(G.w8a8_gemv(x, w_t, torch.ones(8), torch.zeros(8), 127),
                       _exact_epilogue(xq, sx, w_t, torch.ones(8), torch.zeros(8)))


def test_zero_rows_get_scale_one_and_the_bias():
    x, w_t, sw, b = _case(2, 64, 16)
    x[0] = 0
    got = G.w8a8_gemv(x, w_t, sw, b, 127)
    assert torch.equal(got[0], b)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES[:4], ids=SHAPE_IDS[:4])
def test_llm_int8_matches_the_int_mm_kernels(m, k, n):
    """Same codes and integer product as int8_matmul.llm_int8_matmul; the float outlier sum may round in
    another order. One outlier column kept at calibration, one never seen (dequantized fallback)."""
    x, w_t, sw, b = _case(m, k, n, seed=1)
    x[:, 5] = 20.0
    x[0, k - 2] = -9.0
    col_slot = torch.full((k,), -1, dtype=torch.int32)
    col_slot[5] = 0
    outlier_w_t = torch.randn(1, n) / 10
    got = G.llm_int8_gemv(x, w_t, sw, b, 6.0, col_slot, outlier_w_t)
    xr = x.clone()
    xr[:, [5, k - 2]] = 0
    xq, sx = K.quantize_rows(xr, 127)
    want = _exact_epilogue(xq, sx, w_t, sw, b)
    want += x[:, [5]] @ outlier_w_t + x[:, [k - 2]] @ (w_t[[k - 2]].float() * sw)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5 * float(want.abs().max()))
    if torch.backends.cpu.get_cpu_capability() != "AVX2":  # oneDNN's AVX2 int8 GEMM saturates (int_mm_exact)
        ref = K.llm_int8_matmul(x, w_t, sw, b, 6.0, col_slot, outlier_w_t)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-5 * float(ref.abs().max()))
