"""Predict and plan against closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.result import Bootstrap, FitResult
from scalinglab.laws.chinchilla import Chinchilla
from scalinglab.planning.compute_optimal import flops_for_target, optimum, plan
from scalinglab.planning.predict import predict

P = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def make_fit(samples=None):
    law = Chinchilla()
    f = FitResult(law="chinchilla", formula=law.formula, params=dict(P), objective=0.0, n_points=10,
                  huber_delta=1e-3, theta=law.from_public(P).tolist(), inputs={"params": [1e8, 1e10], "tokens": [1e9, 1e11]})
    if samples is not None:
        f.bootstrap = Bootstrap(n=len(samples), level=0.9, ci={}, samples={k: [s[k] for s in samples] for k in P})
    return f


def test_predict_is_the_formula():
    out = predict(make_fit(), {"params": 7e10, "tokens": 1.4e12})
    assert out["loss"] == pytest.approx(1.69 + 406.4 * 7e10**-0.34 + 410.7 * 1.4e12**-0.28, rel=1e-12)
    assert out["extrapolation"]["params"] == pytest.approx(7.0)


def test_predict_interval_covers_replicates():
    samples = [dict(P, E=e) for e in np.linspace(1.6, 1.8, 101)]
    out = predict(make_fit(samples), {"params": 1e9, "tokens": 2e10})
    lo, hi = out["interval"]
    assert lo < out["loss"] < hi
    assert hi - lo == pytest.approx(0.18, rel=0.02)  # 5th–95th percentile of a uniform 0.2-wide spread


def test_plan_closed_form_matches_brute_force():
    C = 5.76e23  # Chinchilla's budget
    out = plan(make_fit(), C)
    N = np.geomspace(1e9, 1e12, 200001)
    L = 1.69 + 406.4 * N**-0.34 + 410.7 * (C / (6 * N)) ** -0.28
    assert out["params"] == pytest.approx(N[L.argmin()], rel=1e-3)
    assert out["loss"] == pytest.approx(L.min(), rel=1e-9)
    assert out["tokens"] * out["params"] * 6 == pytest.approx(C)
    assert out["doubling"]["delta_loss"] < 0


def test_numeric_optimum_agrees_with_closed_form():
    law = Chinchilla()
    n_num, l_num = optimum(law, law.from_public(P), 1e22)
    n_cf = plan(make_fit(), 1e22)["params"]
    assert n_num[0] == pytest.approx(n_cf, rel=1e-6)


def test_target_loss_inverts_plan():
    out = flops_for_target(make_fit(), 2.0)
    assert out["loss"] == pytest.approx(2.0, rel=1e-8)


def test_target_below_floor_is_refused():
    with pytest.raises(InputError, match="irreducible loss E"):
        flops_for_target(make_fit(), 1.5)
