"""Weight-only format and fused dequant-matmul against plain torch references."""

from __future__ import annotations

import pytest
import torch

from scalinglab.kernels import wo_format as F
from scalinglab.kernels.wo_gemm import wo_matmul, wo_matmul_reference

BITS = [4, 6, 8]
BIT_IDS = ["W4", "W6", "W8"]
GROUPS = [32, 64, 128, 0]
GROUP_IDS = ["g32", "g64", "g128", "per-channel"]
# in_features: a multiple of every group, one that is not (padded last group), an odd one (per-channel
# 4-bit pads the row to even length)
IN_FEATURES = [256, 200, 77]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _quantized(w: torch.Tensor, bits: int, group_size: int):
    g = F.effective_group(w.shape[1], bits, group_size)
    q, s, z = F.quantize_groupwise(w, bits, group_size)
    return F.pack_codes(q, bits, g), s, z, g, q


@pytest.mark.parametrize("bits", BITS, ids=BIT_IDS)
def test_pack_unpack_roundtrip_every_code_value(bits, gen):
    levels = 2**bits
    g = 32
    # every code value in every position of a group, and at 4 bits every (low, high) nibble pair
    q = torch.stack([(torch.arange(2 * g) + r) % levels for r in range(levels)]).to(torch.uint8)  # (L, 2g)
    if bits == 4:
        lo, hi = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        pairs = torch.zeros(256, 2 * g, dtype=torch.uint8)
        pairs[:, 0], pairs[:, g // 2] = lo.reshape(-1), hi.reshape(-1)
        q = torch.cat([q, pairs])
    packed = F.pack_codes(q, bits, g)
    assert packed.dtype == torch.uint8
    assert packed.shape == (q.shape[0], g if bits == 4 else 2 * g)  # two codes a byte at 4 bits
    assert torch.equal(F.unpack_codes(packed, bits, g), q)


def test_four_bit_packing_layout():
    """Byte t of a group holds code t (low nibble) and code t + g/2 (high nibble)."""
    q = torch.arange(8, dtype=torch.uint8).reshape(1, 8)  # one row, g = 4: two groups
    assert F.pack_codes(q, 4, 4).tolist() == [[0 | 2 << 4, 1 | 3 << 4, 4 | 6 << 4, 5 | 7 << 4]]


@pytest.mark.parametrize("group_size", GROUPS, ids=GROUP_IDS)
@pytest.mark.parametrize("bits", BITS, ids=BIT_IDS)
def test_quantization_error_at_most_half_a_step(bits, group_size, gen):
    k = 200
    w = torch.randn(24, k, generator=gen) * torch.logspace(-3, 1, 24)[:, None]
    w[3] = 0.0  # a zero row: s = 1, z = 0, exact
    w[5, :40] = w[5, :40].abs() + 0.5  # a one-signed group: the range still holds 0
    packed, s, z, g, q = _quantized(w, bits, group_size)
    assert int(q.max()) <= 2**bits - 1
    assert s.dtype == torch.float16 and z.dtype == torch.uint8
    w_hat = F.dequantize_groupwise(packed, s, z, bits, g, k)
    step = s.float().repeat_interleave(g, dim=1)[:, :k]
    assert ((w - w_hat).abs() <= step / 2 * (1 + 1e-5)).all()
    assert torch.equal(w_hat[3], torch.zeros(k))
    # the float16 step is rounded up, never down: (hi − lo) / L ≤ s
    wp = torch.nn.functional.pad(w, (0, s.shape[1] * g - k)).reshape(24, -1, g)
    span = wp.amax(-1).clamp(min=0) - wp.amin(-1).clamp(max=0)
    assert (span / (2**bits - 1) <= s.float()).all()


def test_tiny_weights_use_subnormal_steps(gen):
    """Steps below float16's normal range are stored subnormal; the kernels decode them exactly."""
    w = torch.randn(8, 64, generator=gen) * 1e-6
    packed, s, z, g, _ = _quantized(w, 4, 32)
    assert (s.float() < 6.1e-5).all()  # 2^-14: all subnormal
    x = torch.randn(3, 64, generator=gen)
    ref = wo_matmul_reference(x, packed, s, z, None, 4, g)
    for path in ("decode", "tiled"):
        torch.testing.assert_close(wo_matmul(x, packed, s, z, None, 4, g, path=path), ref, rtol=1e-5, atol=1e-12)


def _tolerance(x: torch.Tensor, w_hat: torch.Tensor, rel: float) -> torch.Tensor:
    """Elementwise bound for a float matmul: rel · (|x|·|Ŵ|ᵀ) (rounding grows with the absolute sum)."""
    return rel * (x.abs().float() @ w_hat.abs().T) + 1e-6


@pytest.mark.parametrize("m", [1, 3, 16, 257], ids=["M1", "M3", "M16", "M257"])
@pytest.mark.parametrize("group_size", [32, 128, 0], ids=["g32", "g128", "per-channel"])
@pytest.mark.parametrize("bits", BITS, ids=BIT_IDS)
def test_dequant_matmul_matches_reference(bits, group_size, m, gen):
    for k in IN_FEATURES:
        n = 40
        w = torch.randn(n, k, generator=gen)
        bias = torch.randn(n, generator=gen)
        packed, s, z, g, _ = _quantized(w, bits, group_size)
        w_hat = F.dequantize_groupwise(packed, s, z, bits, g, k)
        x = torch.randn(m, k, generator=gen)
        ref = wo_matmul_reference(x, packed, s, z, bias, bits, g)
        for path in ("decode", "tiled"):  # pinned: the default picks one of these by M
            y = wo_matmul(x, packed, s, z, bias, bits, g, path=path)
            assert y.dtype == torch.float32 and y.shape == (m, n)
            assert ((y - ref).abs() <= _tolerance(x, w_hat, 1e-5)).all(), (k, path)
            # bf16 activations ("A16"): output in bf16; the reference runs on the same bf16 inputs
            xb = x.bfloat16()
            yb = wo_matmul(xb, packed, s, z, bias, bits, g, path=path)
            assert yb.dtype == torch.bfloat16
            refb = wo_matmul_reference(xb, packed, s, z, bias, bits, g)
            assert ((yb.float() - refb).abs() <= _tolerance(xb, w_hat, 2**-7) + refb.abs() * 2**-8).all(), (k, path)


def test_empty_batch_and_no_bias(gen):
    w = torch.randn(16, 64, generator=gen)
    packed, s, z, g, _ = _quantized(w, 4, 32)
    assert wo_matmul(torch.zeros(0, 64), packed, s, z, None, 4, g).shape == (0, 16)
    x = torch.randn(2, 64, generator=gen)
    torch.testing.assert_close(wo_matmul(x, packed, s, z, None, 4, g),
                               x @ F.dequantize_groupwise(packed, s, z, 4, g, 64).T, rtol=1e-5, atol=1e-5)


def test_mismatched_buffers_are_refused_before_the_kernel_runs(gen):
    w = torch.randn(16, 64, generator=gen)
    packed, s, z, g, _ = _quantized(w, 4, 32)
    x = torch.randn(2, 64, generator=gen)
    with pytest.raises(ValueError, match="do not fit"):
        wo_matmul(x, packed[:, :-1], s, z, None, 4, g)  # truncated codes would read out of bounds
    with pytest.raises(ValueError, match="do not fit"):
        wo_matmul(torch.randn(2, 96), packed, s, z, None, 4, g)
    with pytest.raises(ValueError, match="float16"):
        wo_matmul(x, packed, s.float(), z, None, 4, g)


def test_bf16_tiles_fall_back_to_fp32_without_native_bf16(monkeypatch, gen):
    """Without native bf16 products the tiles are fp32: only the output is rounded to bf16."""
    from scalinglab.kernels import wo_gemm

    monkeypatch.setattr(wo_gemm, "_fast_bf16_gemm", lambda: False)
    w = torch.randn(40, 200, generator=gen)
    packed, s, z, g, _ = _quantized(w, 4, 64)
    xb = torch.randn(20, 200, generator=gen).bfloat16()
    y = wo_matmul(xb, packed, s, z, None, 4, g, path="tiled")
    ref = wo_matmul_reference(xb, packed, s, z, None, 4, g)
    assert y.dtype == torch.bfloat16
    assert ((y.float() - ref).abs() <= ref.abs() * 2**-8 + 1e-5).all()


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_tiles_across_several_gemm_calls_match_reference(monkeypatch, bf16, gen):
    """Tiles of 16 rows over 40 outputs (16 + 16 + 8): every tile's block lands in its own columns."""
    from scalinglab.kernels import wo_gemm

    monkeypatch.setattr(wo_gemm, "TILE_BYTES", 16 * 200 * 2)
    w = torch.randn(40, 200, generator=gen)
    bias = torch.randn(40, generator=gen)
    packed, s, z, g, _ = _quantized(w, 4, 64)
    w_hat = F.dequantize_groupwise(packed, s, z, 4, g, 200)
    x = torch.randn(5, 200, generator=gen)
    x = x.bfloat16() if bf16 else x
    y = wo_matmul(x, packed, s, z, bias, 4, g, path="tiled")
    ref = wo_matmul_reference(x, packed, s, z, bias, 4, g)
    rel = 2**-7 if bf16 else 1e-5
    assert ((y.float() - ref).abs() <= _tolerance(x, w_hat, rel) + ref.abs() * (2**-8 if bf16 else 0)).all()


def test_default_path_by_rows_and_tile_dtype(monkeypatch):
    """Decode up to SMALL_M rows (fp32 tiles) or SMALL_M_BF16 rows (bf16 tiles), tiles above."""
    from scalinglab.kernels import wo_gemm

    picked = []
    monkeypatch.setattr(wo_gemm, "PROBE_M", (1, 0))  # no measured band: the rule alone
    monkeypatch.setattr(wo_gemm, "_gemv", lambda *a: picked.append("decode"))
    monkeypatch.setattr(wo_gemm, "_gemm_small", lambda *a: picked.append("decode"))
    monkeypatch.setattr(wo_gemm, "_dequant_rows_f32", lambda *a: picked.append("tiled"))
    monkeypatch.setattr(wo_gemm, "_dequant_rows_bf16", lambda *a: picked.append("tiled"))
    packed, s, z = torch.zeros(8, 16, dtype=torch.uint8), torch.ones(8, 1, dtype=torch.float16), \
        torch.zeros(8, 1, dtype=torch.uint8)
    for native in (False, True):
        monkeypatch.setattr(wo_gemm, "_fast_bf16_gemm", lambda native=native: native)
        small = wo_gemm.SMALL_M_BF16 if native else wo_gemm.SMALL_M
        for m in (1, small, small + 1):
            picked.clear()
            wo_matmul(torch.zeros(m, 32, dtype=torch.bfloat16), packed, s, z, None, 4, 32)
            assert picked[0] == ("decode" if m <= small else "tiled"), (native, m)


def test_probe_keeps_the_faster_path_and_its_output():
    import time

    from scalinglab.kernels import wo_gemm

    calls = []

    def run(p):
        calls.append(p)
        time.sleep(0.004 if p == "tiled" else 0.0)
        return p

    assert wo_gemm._probe(run) == ("decode", "decode")
    assert calls.count("decode") == calls.count("tiled") == wo_gemm.PROBE_REPS


def test_measured_path_is_chosen_once_per_shape_and_matches_reference(monkeypatch, gen):
    from scalinglab.kernels import wo_gemm

    monkeypatch.setattr(wo_gemm, "_chosen", {})
    probes = []
    real = wo_gemm._probe
    monkeypatch.setattr(wo_gemm, "_probe", lambda run: probes.append(1) or real(run))
    w = torch.randn(40, 200, generator=gen)
    bias = torch.randn(40, generator=gen)
    packed, s, z, g, _ = _quantized(w, 8, 64)
    w_hat = F.dequantize_groupwise(packed, s, z, 8, g, 200)
    for m in (5, 5, 6):
        x = torch.randn(m, 200, generator=gen)
        y = wo_matmul(x, packed, s, z, bias, 8, g)
        ref = wo_matmul_reference(x, packed, s, z, bias, 8, g)
        assert ((y - ref).abs() <= _tolerance(x, w_hat, 1e-5)).all()
    assert len(probes) == 2 and len(wo_gemm._chosen) == 2  # M = 5 measured once, M = 6 once
    assert set(wo_gemm._chosen.values()) <= {"decode", "tiled"}
