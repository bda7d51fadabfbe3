"""Approaches 1 and 2 recover the compute-optimal exponent a = β/(α+β) of a known Chinchilla law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.approaches import approach1, approach2
from scalinglab.laws.chinchilla import Chinchilla

P = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
A_TRUE = P["beta"] / (P["alpha"] + P["beta"])  # Hoffmann et al. Eq. 4


def curves_table():
    law = Chinchilla()
    rows = []
    for i, n in enumerate(np.geomspace(1e7, 1e10, 40)):
        d = n * np.geomspace(0.5, 500, 60)
        loss = law.predict(P, {"params": np.full_like(d, n), "tokens": d})
        rows += [{"run": f"m{i}", "params": n, "tokens": t, "loss": l} for t, l in zip(d, loss, strict=True)]
    t = pd.DataFrame(rows)
    t["flops"] = 6 * t.params * t.tokens
    return t


def isoflop_table():
    law = Chinchilla()
    rows = []
    for c in np.geomspace(1e18, 1e21, 6):
        G = (P["alpha"] * P["A"] / (P["beta"] * P["B"])) ** (1 / (P["alpha"] + P["beta"]))
        n_star = G * (c / 6) ** A_TRUE
        for n in n_star * np.geomspace(0.1, 10, 15):
            d = c / (6 * n)
            rows.append({"run": f"c{c:.0e}-{n:.3e}", "params": n, "tokens": d, "flops": c,
                         "loss": float(law.predict(P, {"params": n, "tokens": d})[0])})
    return pd.DataFrame(rows)


def test_approach1_recovers_exponent():
    r = approach1(curves_table())
    assert r["a"] == pytest.approx(A_TRUE, abs=0.03)


def test_approach2_on_curves_recovers_exponent():
    r = approach2(curves_table())
    assert r["a"] == pytest.approx(A_TRUE, abs=0.02)


def test_approach2_on_isoflop_grid_recovers_exponent():
    r = approach2(isoflop_table())
    assert r["levels"] == 6
    assert r["a"] == pytest.approx(A_TRUE, abs=0.01)
    assert r["b"] == pytest.approx(1 - A_TRUE, abs=0.01)


def test_approach1_needs_curves():
    with pytest.raises(InputError, match="approach 1 needs"):
        approach1(isoflop_table())


def test_vectorised_interpolation_matches_a_per_run_loop():
    """The one-search interpolation of every run at a level equals np.interp run by run (rows shuffled)."""
    from scalinglab.fitting.approaches import _levels_from_curves, curves

    t = curves_table().sample(frac=1.0, random_state=0)
    runs = curves(t)
    c, per_level = _levels_from_curves(runs, 12)
    for lc, (n, loss) in zip(np.log(c), per_level, strict=True):
        expected = []
        for _, g in t.groupby("run", sort=False):
            g = g.sort_values("flops")
            x, y = np.log(g["flops"].to_numpy()), np.log(g["loss"].to_numpy())
            if x[0] <= lc <= x[-1]:
                expected.append((g["params"].iloc[0], np.exp(np.interp(lc, x, y))))
        np.testing.assert_array_equal(n, [e[0] for e in expected])
        np.testing.assert_allclose(loss, [e[1] for e in expected], rtol=1e-13)
