"""Absmax math: code ranges, zero guards, round-trip error ≤ half a step."""

from __future__ import annotations

import pytest
import torch

from scalinglab.quant.primitives import absmax_quantize, amax_to_scale, dequantize, error_bound, qmax_for_bits


@pytest.mark.parametrize(("bits", "qmax"), [(8, 127), (6, 31), (4, 7)], ids=["8bit", "6bit", "4bit"])
def test_qmax(bits, qmax):
    assert qmax_for_bits(bits) == qmax


def test_zero_amax_gets_unit_scale():
    assert torch.equal(amax_to_scale(torch.tensor([0.0, 2.54]), 127), torch.tensor([1.0, 0.02]))


@pytest.mark.parametrize("bits", [8, 6, 4], ids=["8bit", "6bit", "4bit"])
@pytest.mark.parametrize("dim", [None, -1, 0], ids=["per-tensor", "per-row", "per-column"])
def test_roundtrip_within_half_step(bits, dim):
    x = torch.randn(16, 24) * 5
    q, s = absmax_quantize(x, bits, dim)
    assert q.dtype == torch.int8 and q.abs().max() == qmax_for_bits(bits)
    assert ((dequantize(q, s) - x).abs() <= s / 2 + 1e-6).all()


def test_error_bound_holds_and_is_tight_enough():
    x, w = torch.randn(32, 64), torch.randn(48, 64)
    qx, sx = absmax_quantize(x, 8, -1)
    qw, sw = absmax_quantize(w, 8, -1)
    err = (dequantize(qx, sx) @ dequantize(qw, sw).T - x @ w.T).abs()
    bound = error_bound(x, w, sx, sw)
    assert (err <= bound).all()
    assert err.max() > bound.max() / 100  # a bound that never bites would test nothing
