"""SQuant codes: the constraint bounds hold, codes stay in range, the vectorised version equals a plain loop
reference, and the row error sums (what a linear layer's output sees) beat round-to-nearest."""

from __future__ import annotations

import pytest
import torch

from scalinglab.quant.primitives import qmax_for_bits, quantize_weight
from scalinglab.quant.squant import squant_codes, squant_weight


def _flip_top(q, x, idx, step, k, qmin, qmax):
    """Flip the k candidates among ``idx`` (plain lists) with the largest |δ|, ties to the lower index.
    Returns (the ordered candidates, how many were flipped)."""
    def cand(i):
        d = q[i] - x[i]
        return (d < 0 and q[i] < qmax) if step > 0 else (d > 0 and q[i] > qmin)
    order = sorted((i for i in idx if cand(i)), key=lambda i: -abs(q[i] - x[i]))
    k = min(k, len(order))
    for i in order[:k]:
        q[i] += step
    return order, k


def reference_squant(w: torch.Tensor, scale: torch.Tensor, bits: int, kernel_size: int = 1,
                     zero: torch.Tensor | None = None) -> torch.Tensor:
    """Plain-Python SQuant-E → K → C, one row and one kernel at a time."""
    qmin, qmax = -qmax_for_bits(bits), qmax_for_bits(bits)
    x_all = w.float() / scale.float()
    if zero is not None:
        qmin, qmax, x_all = 0, 2**bits - 1, x_all + zero.float()
    out = []
    for x in x_all.tolist():
        q = [float(min(max(round(v), qmin), qmax)) for v in x]
        n = len(x)
        if kernel_size == 1:  # no kernels: every element offers its own flip to SQuant-C
            offers = {i: (1.0 if q[i] - x[i] < 0 else -1.0) for i in range(n)}
        else:
            offers = {}
            for start in range(0, n, kernel_size):
                idx = list(range(start, min(start + kernel_size, n)))
                e = sum(q[i] - x[i] for i in idx)
                step = 1.0 if e < 0 else -1.0
                k = int(round(abs(e)))
                order, k = _flip_top(q, x, idx, step, k, qmin, qmax)
                if k > 0 and k >= abs(e):  # overshot: offer to undo the last flip
                    offers[order[k - 1]] = -step
                elif k < len(order):  # else offer the next candidate
                    offers[order[k]] = step
        e = sum(q[i] - x[i] for i in range(n))
        step = 1.0 if e < 0 else -1.0
        chosen = [i for i, s in offers.items() if s == step]
        # an offer to undo a flip is always flippable; _flip_top re-checks the candidate condition
        _flip_top(q, x, sorted(chosen), step, int(round(abs(e))), qmin, qmax)
        out.append(q)
    return torch.tensor(out).to(torch.int8 if zero is None else torch.int16)


def _delta(w, codes, scale):
    return codes.float() - w.float() / scale


@pytest.mark.parametrize("kernel_size", [1, 4, 7, 16], ids=["fc-row", "k4", "k7-ragged", "k16"])
@pytest.mark.parametrize("bits", [4, 6, 8], ids=["w4", "w6", "w8"])
def test_matches_plain_reference(bits, kernel_size):
    g = torch.Generator().manual_seed(bits * 100 + kernel_size)
    w = torch.randn(12, 45, generator=g)
    scale = w.abs().amax(1, keepdim=True) / qmax_for_bits(bits)
    assert torch.equal(squant_codes(w, scale, bits, kernel_size), reference_squant(w, scale, bits, kernel_size))


@pytest.mark.parametrize("bits", [4, 8], ids=["w4", "w8"])
def test_asymmetric_codes_match_reference(bits):
    """Group-wise asymmetric codes (scale and zero point per group of 16 inputs, kernel = group)."""
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(10, 64, generator=g) + 0.3
    wg = w.view(10, 4, 16)
    lo, hi = wg.amin(-1).clamp(max=0), wg.amax(-1).clamp(min=0)
    s = ((hi - lo) / (2**bits - 1)).repeat_interleave(16, dim=1)
    z = torch.round(-lo / ((hi - lo) / (2**bits - 1))).repeat_interleave(16, dim=1)
    codes = squant_codes(w, s, bits, 16, zero=z)
    assert torch.equal(codes, reference_squant(w, s, bits, 16, zero=z))
    assert codes.min() >= 0 and codes.max() <= 2**bits - 1
    d = codes.float() - (w / s + z)
    assert d.abs().max() <= 1 + 1e-5 and d.sum(1).abs().max() <= 0.5 + 1e-4


@pytest.mark.parametrize("kernel_size", [1, 8, 5], ids=["fc-row", "k8", "k5-ragged"])
@pytest.mark.parametrize("bits", [4, 6, 8], ids=["w4", "w6", "w8"])
def test_constraints_hold(bits, kernel_size):
    torch.manual_seed(bits + kernel_size)
    w = torch.randn(64, 203) * torch.rand(64, 1)
    qmax = qmax_for_bits(bits)
    codes, scale = squant_weight(w, bits, kernel_size)
    d = _delta(w, codes, scale[:, None])
    assert codes.abs().max() <= qmax
    assert d.abs().max() <= 1.0 + 1e-5  # element: rounded up or down, never further
    assert d.sum(1).abs().max() <= 0.5 + 1e-4  # channel (output row)
    if kernel_size > 1:
        n_pad = -203 % kernel_size
        kern = torch.nn.functional.pad(d, (0, n_pad)).view(64, -1, kernel_size).sum(-1)
        assert kern.abs().max() < 1.0 + 1e-4  # kernel: ≤ 0.5 after SQuant-K, one more flip in SQuant-C
    rtn, _ = quantize_weight(w, bits)
    changed = codes != rtn
    assert (codes.int() - rtn.int()).abs().max() <= 1
    assert changed.any()  # flips happened, each by one step and only away from the nearest code
    assert (d.abs()[changed] >= 0.5 - 1e-5).all()


def test_kernel_bound_after_k_stage_alone():
    """With a single kernel per row, SQuant-C has nothing left to do: |Σ kernel δ| ≤ 0.5 as SQuant-K leaves it."""
    torch.manual_seed(3)
    w = torch.randn(32, 24)
    codes, scale = squant_weight(w, 4, kernel_size=24)
    assert _delta(w, codes, scale[:, None]).sum(1).abs().max() <= 0.5 + 1e-5


def test_edge_codes_never_flip_outward():
    """Rows whose values sit at ±qmax·s (or beyond, clamped) keep codes in range."""
    w = torch.tensor([[7.4, 7.3, -7.45, 6.6, 6.6, 6.6, -6.6, 0.4]])
    codes = squant_codes(w, torch.ones(1, 1), 4, kernel_size=1)
    assert codes.abs().max() <= 7
    assert torch.equal(codes, reference_squant(w, torch.ones(1, 1), 4))


def test_row_sum_error_smaller_than_rtn():
    torch.manual_seed(0)
    w = torch.randn(256, 512)
    for bits in (4, 6):
        rtn, scale = quantize_weight(w, bits)
        sq, scale2 = squant_weight(w, bits)
        assert torch.equal(scale, scale2)
        rtn_sum = _delta(w, rtn, scale[:, None]).sum(1).abs().mean()
        sq_sum = _delta(w, sq, scale[:, None]).sum(1).abs().mean()
        # RTN: a sum of 512 errors ~U(-0.5, 0.5) has mean |Σ| ≈ 5.2; SQuant caps it at 0.5
        assert rtn_sum > 3.0 and sq_sum < 0.3


def test_zero_rows_and_bad_shapes():
    w = torch.zeros(3, 10)
    codes, scale = squant_weight(w, 4)
    assert (codes == 0).all() and torch.equal(scale, torch.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        squant_codes(torch.zeros(3), torch.ones(1), 4)
    with pytest.raises(ValueError, match="kernel_size"):
        squant_codes(w, torch.ones(3, 1), 4, kernel_size=0)
