"""The bf16 dot-product weight-only kernel (4-bit and byte codes): layout round trips, IR, and results
against the plain reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scalinglab.kernels import wo_bf16 as B
from scalinglab.kernels.wo_format import (
    dequantize_groupwise,
    effective_group,
    pack_codes,
    quantize_groupwise,
    unpack_codes,
)

needs_bf16 = pytest.mark.skipif(not B.available(), reason="the CPU has no AVX-512 BF16: the kernel cannot run here")


def _layer(n, k, group_size, bits=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen) * 0.05
    w[:, ::7] *= 6  # uneven columns: groups with different ranges and zero points
    g = effective_group(k, bits, group_size)
    q, s, z = quantize_groupwise(w, bits, group_size)
    return pack_codes(q, bits, g), s, z, g


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize(("n", "k", "group_size"), [(48, 96, 32), (64, 200, 64), (32, 130, 0)])
def test_layout_round_trip(n, k, group_size, bits):
    codes, s, z, g = _layer(n, k, group_size, bits)
    wt, st, zt = B.to_layout(codes, s, z, bits, g)
    assert wt.numel() == codes.numel() and st.numel() == s.numel() and zt.numel() == z.numel()
    back = B.from_layout(wt, st, zt, bits, g)
    assert all(torch.equal(a, b) for a, b in zip(back, (codes, s, z), strict=True))
    # (tile, group, pair p, lane n) holds inputs 2p and 2p + 1 of row 16·tile + n: low and high nibble of
    # one byte for 4-bit codes, two bytes for byte codes
    q = torch.stack([wt & 15, wt >> 4], dim=-1) if bits == 4 else wt  # (T, G, g/2, 16, 2)
    full = unpack_codes(codes, bits, g)
    t, j, p, lane = 1 if n > 16 else 0, 0, 3, 5
    assert int(q[t, j, p, lane, 0]) == int(full[16 * t + lane, j * g + 2 * p])
    assert int(q[t, j, p, lane, 1]) == int(full[16 * t + lane, j * g + 2 * p + 1])


@pytest.mark.parametrize("width", [4, 8])
def test_ir_parses_and_verifies(width):
    """The generated IR is valid LLVM (checked without running it: any CPU can verify it)."""
    import llvmlite.binding as llvm

    mod = llvm.parse_assembly(B.ir_module(width))
    mod.verify()
    names = {f.name for f in mod.functions}
    assert {f"w{width}bf16_r{r}_t{t}" for r in range(B.ROWS) for t in (1, B.TILES)} <= names


def test_code_to_bf16_trick():
    """0x4100 | c << 3 is the bf16 of 8 + c/2 for every 4-bit code c (what the kernel's unpacking relies on),
    and every byte code converts to bf16 exactly."""
    c = torch.arange(16, dtype=torch.int32)
    bits = (0x4100 | (c << 3)).to(torch.int16)
    assert torch.equal(bits.view(torch.bfloat16).float(), 8 + c.float() / 2)
    byte = torch.arange(256, dtype=torch.float32)
    assert torch.equal(byte.bfloat16().float(), byte)


@needs_bf16
@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize(("n", "k", "group_size", "m"), [
    (48, 96, 32, 1), (48, 96, 32, 8), (48, 96, 32, 11),  # 3 tiles
    (80, 96, 32, 9),  # 5 tiles: steps of 2 or 3, then the rest one tile at a time
    (64, 200, 64, 16),  # K not a multiple of the group: zero-padded inputs
    (32, 130, 0, 3),  # per output channel (one group per row)
    (256, 512, 128, 17), (256, 512, 128, 40),  # several row chunks plus a rest
])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference(n, k, group_size, m, bias, bits):
    codes, s, z, g = _layer(n, k, group_size, bits)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(m, k, generator=gen).bfloat16()
    b = torch.randn(n, generator=gen) if bias else None
    ref = torch.nn.functional.linear(x.float(), dequantize_groupwise(codes, s, z, bits, g, k), b)
    y = B.bf16_mm(x, *B.to_layout(codes, s, z, bits, g), g, b)
    assert y.dtype == torch.bfloat16 and y.shape == (m, n)
    # fp32 accumulation, one rounding to bf16: within half a bf16 step of the exact result (+ fp32 slack)
    tol = ref.abs() * 2.0**-8 + 1e-5 * float(ref.abs().max())
    assert bool(((y.float() - ref).abs() <= tol).all())


@needs_bf16
@pytest.mark.parametrize("bits", [4, 8])
def test_threads_give_the_same_result(bits):
    import numba

    codes, s, z, g = _layer(160, 256, 64, bits)  # 10 tiles: 5 steps of 2 over the tasks
    x = torch.randn(9, 256, generator=torch.Generator().manual_seed(2)).bfloat16()
    layout = B.to_layout(codes, s, z, bits, g)
    one = None
    for threads in (1, 2):
        nb, tt = numba.get_num_threads(), torch.get_num_threads()
        try:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            torch.set_num_threads(threads)
            y = B.bf16_mm(x, *layout, g)
        finally:
            numba.set_num_threads(nb)
            torch.set_num_threads(tt)
        one = y if one is None else one
        assert torch.equal(y, one)


@needs_bf16
def test_rejects_mismatched_buffers():
    codes, s, z, g = _layer(48, 96, 32)
    wt, st, zt = B.to_layout(codes, s, z, 4, g)
    with pytest.raises(ValueError, match="do not fit"):
        B.bf16_mm(torch.zeros(2, 128, dtype=torch.bfloat16), wt, st, zt, g)  # K beyond the weight
    with pytest.raises(ValueError, match="do not fit"):
        B.bf16_mm(torch.zeros(2, 96), wt, st, zt, g)  # fp32 activations
    with pytest.raises(ValueError, match="do not fit"):
        B.bf16_mm(torch.zeros(2, 96, dtype=torch.bfloat16), wt, st[:, :1], zt, g)  # steps of another layer
    with pytest.raises(ValueError, match="do not fit"):  # a strided view: the kernel reads raw memory
        B.bf16_mm(torch.zeros(2, 96, dtype=torch.bfloat16), wt, st.transpose(0, 1).contiguous().transpose(0, 1), zt, g)


def test_not_available_without_bf16(monkeypatch):
    """A CPU (or a capped process) without AVX-512 BF16 never takes the kernel: the layer falls back."""
    from scalinglab.hw import capabilities
    from scalinglab.quant.weight_only import WeightOnlyLinear

    real = capabilities.detect()
    capped = dataclasses.replace(real, flags=tuple(f for f in real.flags if f != "avx512_bf16"))
    monkeypatch.setattr(capabilities, "detect", lambda: capped)
    B.available.cache_clear()
    try:
        for bits in (4, 8):
            assert not B.available(bits)
            layer = WeightOnlyLinear.from_float(torch.randn(32, 64) * 0.1, None, bits, 32)
            x = torch.randn(3, 64).bfloat16()
            y = layer(x)
            assert layer._runtime is None or layer._runtime[0] != "bf16"
            ref = torch.nn.functional.linear(x.float(), layer.dequantize())
            assert (y.float() - ref).abs().max() <= 0.02 * ref.abs().max()
    finally:
        B.available.cache_clear()
