"""SQuant with input moments (``moment_codes``): equal to a plain loop reference, never worse than RTN on its
objective, the μ-weighted channel sum bounded like SQuant's row sum, and on a synthetic LayerNorm-fed layer
a smaller output error than both RTN and plain SQuant."""

from __future__ import annotations

import pytest
import torch

from scalinglab.quant.primitives import qmax_for_bits
from scalinglab.quant.squant import moment_codes, moment_objective, squant_codes


def reference_moment_codes(w, scale, bits, mean, var, zero=None):
    """Plain Python, one row at a time: RTN, candidates ranked by cost per unit of |E| removed, then every
    prefix of the ranking tried and the first one with the smallest objective kept."""
    qmin, qmax = -qmax_for_bits(bits), qmax_for_bits(bits)
    x_all = w.float() / scale.float()
    if zero is not None:
        qmin, qmax, x_all = 0, 2**bits - 1, x_all + zero.float()
    s_all = scale.float().expand_as(w)
    out = []
    for x, s in zip(x_all.tolist(), s_all.tolist(), strict=True):
        q = [float(min(max(round(v), qmin), qmax)) for v in x]
        n = len(x)
        c = [float(var[j]) * s[j] ** 2 for j in range(n)]
        b = [float(mean[j]) * s[j] for j in range(n)]
        d = [q[j] - x[j] for j in range(n)]
        e = sum(b[j] * d[j] for j in range(n))
        cands = []
        for j in range(n):
            step = -1.0 if d[j] > 0 else 1.0 if d[j] < 0 else 0.0
            if step == 0 or not (qmin <= q[j] + step <= qmax) or step * b[j] * e >= 0:
                continue
            cost, gain = c[j] * (1 - 2 * abs(d[j])), abs(b[j])
            cands.append((cost / gain, j, step, cost, gain))
        cands.sort(key=lambda t: (t[0], t[1]))
        best_k, best, acc_c, acc_g = 0, abs(e) ** 2, 0.0, 0.0
        for k, (_, _, _, cost, gain) in enumerate(cands, start=1):
            acc_c, acc_g = acc_c + cost, acc_g + gain
            f = acc_c + (abs(e) - acc_g) ** 2
            if f < best - 1e-9 * (1 + best):
                best_k, best = k, f
        for _, j, step, _, _ in cands[:best_k]:
            q[j] += step
        out.append(q)
    return torch.tensor(out).to(torch.int8 if zero is None else torch.int16)


def _layer(seed, n_out=12, n_in=40, bits=4):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g)
    scale = w.abs().amax(1, keepdim=True) / qmax_for_bits(bits)
    gamma = 0.5 + torch.rand(n_in, generator=g)
    beta = 0.7 * torch.randn(n_in, generator=g)
    return w, scale, beta, gamma.pow(2)


@pytest.mark.parametrize("bits", [4, 6, 8], ids=["w4", "w6", "w8"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_plain_reference(bits, seed):
    w, scale, mean, var = _layer(seed, bits=bits)
    got = moment_codes(w, scale, bits, mean, var)
    assert torch.equal(got, reference_moment_codes(w, scale, bits, mean, var))
    assert (got != torch.round(w / scale)).sum() >= 5  # not simply RTN


def test_asymmetric_group_codes_match_reference():
    bits, g = 4, 8
    w, _, mean, var = _layer(7, n_in=32)
    wg = w.view(12, 4, g)
    lo, hi = wg.amin(-1).clamp(max=0), wg.amax(-1).clamp(min=0)
    s = ((hi - lo) / (2**bits - 1)).repeat_interleave(g, dim=1)
    z = torch.round(-lo / ((hi - lo) / (2**bits - 1))).repeat_interleave(g, dim=1)
    got = moment_codes(w, s, bits, mean, var, zero=z)
    ref = reference_moment_codes(w, s, bits, mean, var, zero=z)
    assert got.dtype == torch.int16 and int(got.min()) >= 0 and int(got.max()) <= 15
    assert torch.equal(got, ref)


@pytest.mark.parametrize("bits", [4, 6])
def test_never_worse_than_rtn_and_channel_sum_shrinks(bits):
    w, scale, mean, var = _layer(3, n_out=64, n_in=128, bits=bits)
    rtn = torch.round(w / scale)
    q = moment_codes(w, scale, bits, mean, var).float()
    d_rtn, d = rtn - w / scale, q - w / scale
    assert (d.abs() <= 1 + 1e-6).all()  # round up or down, never further
    assert (moment_objective(d, scale, mean, var) <= moment_objective(d_rtn, scale, mean, var) * (1 + 1e-6)).all()
    e_rtn, e = (d_rtn * scale * mean).sum(1).abs(), (d * scale * mean).sum(1).abs()
    assert (e <= e_rtn + 1e-6).all() and e.mean() < 0.5 * e_rtn.mean()


def test_weighted_sum_bound_without_element_cost():
    """v = 0: only the μ-weighted sum counts, and it ends within half the largest |μ_j s| (SQuant's ±0.5 of a
    step when every μ_j is 1)."""
    w, scale, mean, _ = _layer(4, n_out=32, n_in=100)
    q = moment_codes(w, scale, 4, mean, torch.zeros_like(mean)).float()
    e = ((q - w / scale) * scale * mean).sum(1).abs()
    assert (e <= 0.5 * (scale * mean.abs()).amax(1) + 1e-6).all()
    ones = torch.ones_like(mean)
    q1 = moment_codes(w, scale, 4, ones, torch.zeros_like(mean)).float()
    assert ((q1 - w / scale).sum(1).abs() <= 0.5 + 1e-5).all()


def test_output_error_beats_rtn_and_squant_on_layernorm_inputs():
    """x = γ·z + β with z ~ N(0, 1): the relative output error of moment codes is below RTN's and SQuant's."""
    g = torch.Generator().manual_seed(11)
    n_out, n_in, bits = 64, 256, 4
    w = torch.randn(n_out, n_in, generator=g) * 0.05
    gamma = 0.3 + torch.rand(n_in, generator=g)
    beta = 0.5 * torch.randn(n_in, generator=g)
    x = gamma * torch.randn(8192, n_in, generator=g) + beta
    scale = w.abs().amax(1, keepdim=True) / qmax_for_bits(bits)
    y = x @ w.T

    def err(codes):
        return float((x @ (codes.float() * scale - w).T).norm() / y.norm())

    e_rtn = err(torch.round(w / scale))
    e_sq = err(squant_codes(w, scale, bits))
    e_mom = err(moment_codes(w, scale, bits, beta, gamma.pow(2)))
    assert e_mom < 0.95 * min(e_rtn, e_sq), (e_mom, e_rtn, e_sq)


def test_zero_mean_is_rtn_and_bad_shapes():
    w, scale, mean, var = _layer(5)
    assert torch.equal(moment_codes(w, scale, 4, torch.zeros_like(mean), var), torch.round(w / scale).to(torch.int8))
    with pytest.raises(ValueError, match="shape"):
        moment_codes(w, scale, 4, mean[:-1], var)
    with pytest.raises(ValueError, match="2-D"):
        moment_codes(w[0], scale[0], 4, mean, var)
