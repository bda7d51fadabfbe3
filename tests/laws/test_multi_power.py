from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.laws.conftest import check_jacobian
from tests.laws.schedules import curve_table, exact_loss_drop

import scalinglab
from scalinglab.laws.lr_schedule import reconstruct
from scalinglab.laws.multi_power import MultiPower, cell_edges

# Luo et al. 2025 fit of the 100M model (repository src/config.py), L0 shifted to our warm-up convention.
TRUTH = {"L0": 2.78, "A": 0.60, "alpha": 0.45, "B": 440.0, "C": 2.1, "beta": 0.6, "gamma": 0.65}


def _x(law, table):
    return law.prepare({"run": table["run"].to_numpy(), "step": table["step"].to_numpy(), "lr": table["lr"].to_numpy()})


def _loss_drop(law, public, x):
    """LD recovered from the prediction: L0 + A·X^-α − L."""
    pred = np.exp(law.log_predict(law.from_public(public)[None], x)[0])
    return public["L0"] + public["A"] * np.exp(-public["alpha"] * x["logX"]) - pred


def test_cell_edges_grow_geometrically():
    edges = cell_edges(10_000, 0.25)
    widths = np.diff(edges)
    assert edges[0] == 0 and edges[-1] >= 10_000
    assert np.all(widths >= 1) and np.all(widths <= np.maximum(1, 0.25 * edges[:-1]))
    assert len(edges) < 60  # ~log(T)/ratio pairs per point instead of T


@pytest.mark.parametrize(
    ("kind", "tol"),
    [("constant", 1e-12), ("cosine", 3e-5), ("wsd", 5e-5), ("step9", 5e-5), ("cyclic", 5e-5)],
    ids=["constant", "cosine", "wsd-exponential", "two-stage-drop", "cyclic-non-monotone"],
)
def test_compressed_loss_drop_matches_per_step_sum(kind, tol):
    table = curve_table([kind])
    law = MultiPower()
    x = _x(law, table)
    c = reconstruct(table["run"].to_numpy(), table["step"].to_numpy(), table["lr"].to_numpy())[0]
    p = TRUTH
    exact = np.array([exact_loss_drop(c.eta, t, p["B"], p["C"], p["beta"], p["gamma"]) for t in c.index(c.steps)])
    got = _loss_drop(law, p, x)[c.rows]
    np.testing.assert_allclose(got, exact, rtol=0, atol=tol)  # absolute, in loss units (L ≈ 3)
    assert x["S"].size <= 60 * len(table)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    law = MultiPower()
    x = _x(law, curve_table(["cosine", "step9", "cyclic"], every=500))
    theta = law.from_public(TRUTH)[None] + rng.normal(0, 0.05, (5, 7))
    check_jacobian(law, theta, x, rtol=1e-5)


# --- the bundled real curves (Luo et al. 2025) ------------------------------------------------------
DATA = Path(scalinglab.__file__).parent / "data" / "multipowerlaw"
PUBLISHED_100M = dict(zip(("L0", "A", "alpha", "B", "C", "beta", "gamma"),  # repository src/config.py
                          (2.6514477, 0.60115152, 0.45295811, 437.9464276, 2.13245612, 0.59785199, 0.65523644), strict=True))


def _repository_schedule(name: str, warmup: int = 2160, peak: float = 3e-4, end: float = 3e-5) -> np.ndarray:
    """The per-step schedules of the authors' data loader (cosine and WSD), rebuilt from their definitions."""
    ramp = np.linspace(0.0, peak, warmup)
    if name.startswith("cosine"):
        total = int(name.split("_")[1])
        s = np.arange(warmup, total)
        return np.concatenate([ramp, end + 0.5 * (peak - end) * (1 + np.cos(np.pi * (s - warmup) / (total - warmup)))])
    s = np.arange(20000, 24000)  # wsd_20000_24000: exponential decay over the last 4,000 steps
    return np.concatenate([ramp, np.full(20000 - warmup, peak), peak ** ((24000 - s) / 4000) * end ** ((s - 20000) / 4000)])


def _read(size: str, names) -> pd.DataFrame:
    frames = []
    for name in names:
        t = pd.read_csv(DATA / f"csv_{size}" / f"{name}.csv")
        t["run"] = name
        frames.append(t[t["step"] < 24000] if name.endswith("24000") else t)  # as the authors: drop the last log
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("name", ["cosine_24000", "wsd_20000_24000"], ids=["cosine", "wsd"])
def test_repository_convention_matches_the_authors_formula(name):
    # Their evaluation: L = L0 + A·cumsum(η)[t]^-α + B·Σ_{k=1..t}(η_k − η_{k−1})·G(…) over *all* steps, warm-up included.
    table = _read("100", [name])
    p = PUBLISHED_100M
    eta = _repository_schedule(name)
    area = np.cumsum(eta)
    ref = []
    for t in table["step"].to_numpy()[::8]:
        k = np.arange(1, t + 1)
        g = 1 - (1 + p["C"] * eta[k] ** -p["gamma"] * (area[t] - area[k - 1])) ** -p["beta"]
        ref.append(p["L0"] + p["A"] * area[t] ** -p["alpha"] + p["B"] * np.sum((eta[k] - eta[k - 1]) * g))
    law = MultiPower(warmup_in_loss_drop=True)
    got = np.exp(law.log_predict(law.from_public(p)[None], _x(law, table))[0])[::8]
    # Differences: η rebuilt from 128-step samples, the ramp's end point, and the compressed sum. The WSD
    # log starts at step 2176, so our warm-up runs 16 steps longer than theirs: visible early on only.
    late = table["step"].to_numpy()[::8] > 8000
    np.testing.assert_allclose(got[late], np.array(ref)[late], rtol=1e-4)
    np.testing.assert_allclose(got, ref, rtol=1e-3)


@pytest.mark.parametrize("size", ["25", "400"])
@pytest.mark.parametrize("name", ["wsdcon_3", "wsdcon_9", "wsdcon_18", "wsdld_20000_24000"])
def test_compressed_sum_meets_its_bound_on_the_bundled_step_drops(name, size):
    # The logged two-stage drops are rebuilt as 64–128-step ramps: distance cells alone missed LD there by
    # up to 2.3e-3 and did not converge as cells shrank; cells split inside the drop meet the 5e-5 bound.
    table = _read(size, [name])
    law = MultiPower()
    x = _x(law, table)
    c = reconstruct(table["run"].to_numpy(), table["step"].to_numpy(), table["lr"].to_numpy())[0]
    p = TRUTH
    t_pos = c.index(c.steps)[::3]
    exact = np.array([exact_loss_drop(c.eta, t, p["B"], p["C"], p["beta"], p["gamma"]) for t in t_pos])
    got = _loss_drop(law, p, x)[c.rows][::3]
    assert np.abs(got - exact).max() < 5e-5
    assert np.abs(exact).max() > 0.05  # the drop is large: the bound is not met trivially
