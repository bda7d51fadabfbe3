"""B_simple from micro-batch gradient norms against a brute-force per-example gradient computation."""

import numpy as np
import pytest
import torch

from scalinglab.ladder.noise_scale import NoiseScaleEMA, NoiseScaleTracker, b_simple, unbiased_estimates


def test_estimators_are_exact_on_expected_norms():
    g2, trace = 0.7, 12.0
    sq = lambda B: g2 + trace / B  # noqa: E731 — E|G_B|² (McCandlish et al. 2018, A.1)
    est_g2, est_trace = unbiased_estimates(sq(8), sq(32), 8, 32)
    assert est_g2 == pytest.approx(g2) and est_trace == pytest.approx(trace)
    assert b_simple(est_trace, est_g2) == pytest.approx(trace / g2)


def test_ema_is_bias_corrected():
    ema = NoiseScaleEMA(decay=0.9)
    assert ema.value() is None
    for _ in range(3):
        ema.update(2.0, 10.0)
    assert ema.value() == pytest.approx({"b_simple": 5.0, "g2": 2.0, "trace": 10.0})


def _tiny_problem(seed=0, n=256):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    X = torch.randn(n, 6, dtype=torch.float64)
    y = torch.sin(X.sum(1, keepdim=True)) + 0.3 * torch.randn(n, 1, dtype=torch.float64)
    return model, X, y


def _per_example_truth(model, X, y):
    """|G|² and tr(Σ) of the per-example gradients over the whole data set, one backward per example."""
    rows = []
    for i in range(len(X)):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(X[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone())
    g = torch.stack(rows)  # (n, P)
    G = g.mean(0)
    trace = ((g - G) ** 2).sum(1).mean()  # tr of the population covariance: batches sample with replacement
    return float(G @ G), float(trace)


def test_tracker_agrees_with_brute_force_within_sampling_error():
    model, X, y = _tiny_problem()
    g2_true, trace_true = _per_example_truth(model, X, y)
    b, k, steps = 4, 4, 600
    tracker = NoiseScaleTracker(model.parameters(), micro_batch=b, accum=k, decay=0.99)
    rng = np.random.default_rng(0)
    est = []
    for _ in range(steps):  # parameters fixed: every step samples the same gradient distribution
        model.zero_grad()
        tracker.begin_step()
        for _ in range(k):
            idx = torch.as_tensor(rng.integers(0, len(X), b))
            (torch.nn.functional.mse_loss(model(X[idx]), y[idx]) / k).backward()
            tracker.after_micro()
        tracker.end_step()
        est.append(tracker.last)
    est = np.array(est)
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(steps)
    assert abs(mean[0] - g2_true) < 4 * se[0], (mean[0], g2_true, se[0])
    assert abs(mean[1] - trace_true) < 4 * se[1], (mean[1], trace_true, se[1])
    assert se[1] < 0.1 * trace_true  # the check has teeth: the sampling error is small against the value
    smoothed = tracker.value()["b_simple"]
    assert smoothed == pytest.approx(trace_true / g2_true, rel=0.5)


def test_tracker_needs_two_micro_batches():
    model, _, _ = _tiny_problem()
    with pytest.raises(ValueError, match="at least 2"):
        NoiseScaleTracker(model.parameters(), micro_batch=8, accum=1)
