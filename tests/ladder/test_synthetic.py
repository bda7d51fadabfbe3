"""The synthetic language: exact entropy rate vs an empirical estimate from samples."""

import numpy as np
import pytest

from scalinglab.ladder.synthetic import MarkovConfig, MarkovSource


@pytest.mark.parametrize("cfg", [MarkovConfig(vocab_size=16, order=1, branching=4),
                                 MarkovConfig(vocab_size=8, order=2, branching=3, seed=1)], ids=["order1", "order2"])
def test_entropy_rate_matches_samples(cfg):
    src = MarkovSource(cfg)
    x = src.sample(2000, 40, np.random.default_rng(0))
    k, V = cfg.order, cfg.vocab_size
    ctx = np.zeros_like(x[:, k:])
    for j in range(k):
        ctx = ctx * V + x[:, j:x.shape[1] - k + j]
    # Mean -log P(x_t | context) over samples estimates H; its standard error here is ~0.005 nats.
    nll = -np.log(src.P[ctx.ravel(), x[:, k:].ravel()]).mean()
    assert abs(nll - src.entropy_rate) < 0.03
    # Plug-in estimate from counts agrees too (independent of P).
    counts = np.zeros((V**k, V))
    np.add.at(counts, (ctx.ravel(), x[:, k:].ravel()), 1)
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(counts * np.where(p > 0, np.log(p), 0)).sum() / counts.sum()
    assert abs(h - src.entropy_rate) < 0.03


def test_stationary_is_fixed_point_and_floor():
    src = MarkovSource(MarkovConfig(vocab_size=8, order=2, branching=3))
    mu = src.stationary
    assert abs(mu.sum() - 1) < 1e-9
    # First-position entropy: the marginal of one token under μ.
    marg = mu.reshape(8, 8).sum(0)
    h0 = -(marg[marg > 0] * np.log(marg[marg > 0])).sum()
    assert abs(src.conditional_entropy(0) - h0) < 1e-9
    assert src.conditional_entropy(0) >= src.conditional_entropy(1) >= src.entropy_rate
    T = 10
    expected = (src.conditional_entropy(1) + (T - 1) * src.entropy_rate) / T
    assert abs(src.entropy_floor(T) - expected) < 1e-12


def test_sampling_deterministic():
    src = MarkovSource(MarkovConfig(vocab_size=16, order=1, branching=4))
    a = src.sample(4, 20, np.random.default_rng(5))
    b = src.sample(4, 20, np.random.default_rng(5))
    assert np.array_equal(a, b) and a.shape == (4, 20) and a.max() < 16
