"""The two-step chain: recovery from a synthetic ladder with known constants, paired intervals, JSON checks."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.chain import ChainConfig, final_rows, fit_chain, link_rows, smooth_via
from scalinglab.fitting.chain_result import ChainResult, from_dict
from scalinglab.laws.registry import get_law

STEP1 = {"E": 0.55, "A": 40.0, "B": 900.0, "alpha": 0.25, "beta": 0.32}  # task loss of (N, D)
STEP2 = {"a": -0.6, "k": 6.0, "L0": 1.0, "b": 0.9}  # accuracy of task loss
TARGET_RUN = {"params": 8e9, "tokens": 4e11}


def ladder(noise=0.01, seed=0, checkpoints=8):
    """20 runs (5 sizes × 4 token budgets), each evaluated at ``checkpoints`` points along its tokens."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in np.geomspace(4e7, 1.5e9, 5):
        for ratio in (10, 20, 50, 100):
            D = N * ratio
            for f in np.linspace(1 / checkpoints, 1.0, checkpoints):
                rows.append({"run": f"n{N:.0e}-x{ratio}", "params": N, "tokens": f * D})
    t = pd.DataFrame(rows)
    via = get_law("chinchilla").predict(STEP1, {"params": t.params, "tokens": t.tokens})
    t["task_loss:t"] = via * np.exp(noise * rng.standard_normal(len(t)))
    acc = get_law("sigmoid").predict(STEP2, {"x": t["task_loss:t"].to_numpy()})
    t["acc:t"] = acc * np.exp(noise * rng.standard_normal(len(t)))
    t.attrs["source"] = "synthetic"
    return t


def truth(inputs):
    via = get_law("chinchilla").predict(STEP1, {k: np.array([v]) for k, v in inputs.items()})
    return float(via[0]), float(get_law("sigmoid").predict(STEP2, {"x": via})[0])


@pytest.fixture(scope="module")
def fitted():
    return fit_chain(ladder(), ChainConfig(target="acc:t", via="task_loss:t", bootstrap=100, skip_fraction=0.0, jobs=2))


def test_rows_of_each_step():
    t = ladder(checkpoints=10)
    fin = t.iloc[final_rows(t)]
    assert len(fin) == 20 and (fin.groupby("run").tokens.max() == t.groupby("run").tokens.max()).all()
    assert len(link_rows(t, 0.1)) == 20 * 9  # the first of each run's 10 checkpoints is left out
    s = smooth_via(t, "task_loss:t", 3)
    run = t.run.iloc[0]
    raw, sm = t[t.run == run]["task_loss:t"].to_numpy(), s[s.run == run]["task_loss:t"].to_numpy()
    np.testing.assert_allclose(sm[4], raw[2:5].mean())  # trailing mean over three evaluations
    np.testing.assert_allclose(sm[0], raw[0])


def test_chain_recovers_known_constants(fitted):
    for step, known in ((fitted.step1, STEP1), (fitted.step2, STEP2)):
        for key, value in known.items():
            lo, hi = step.bootstrap.ci[key]
            assert lo <= value <= hi, (step.law, key, value, lo, hi)
    via, acc = truth(TARGET_RUN)
    pred = fitted.predict(TARGET_RUN)
    assert pred["via"]["interval"][0] <= via <= pred["via"]["interval"][1]
    assert pred["target"]["interval"][0] <= acc <= pred["target"]["interval"][1]
    assert abs(pred["target"]["value"] / acc - 1) < 0.02


def test_chain_interval_is_wider_than_step2_alone(fitted):
    pred = fitted.predict(TARGET_RUN)
    chain_width = np.diff(pred["target"]["interval"])[0]
    link_width = np.diff(pred["target"]["link_only_interval"])[0]
    assert chain_width > 1.2 * link_width  # step 1's uncertainty is carried through step 2


def test_steps_share_their_replicates(fitted):
    # Replicate i of both steps was fitted on the same resampled runs: same count of paired samples.
    n1 = len(fitted.step1.bootstrap.samples["E"])
    assert n1 == len(fitted.step2.bootstrap.samples["a"]) and n1 >= 95


def test_baseline_fits_the_error_of_a_rising_accuracy(fitted):
    assert fitted.baseline_complement
    base = fitted.predict(TARGET_RUN)["baseline"]
    assert base["fitted"] == "1 - acc:t" and 0 < base["value"] < 1
    assert base["interval"][0] <= base["interval"][1]


def test_json_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "chain.json")
    again = ChainResult.load(tmp_path / "chain.json")
    assert again.predict(TARGET_RUN) == fitted.predict(TARGET_RUN)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("step2"), "missing field 'step2'"),
    (lambda d: d.update(link="nope"), "unknown law"),
    (lambda d: d["step1"]["params"].update(E="x"), "step1.params.E"),
    (lambda d: d["step2"]["bootstrap"]["samples"].update(a=[0.1]), "same length"),
    (lambda d: [v.pop() for v in d["step2"]["bootstrap"]["samples"].values()], "must be paired"),
    (lambda d: d.update(kind="fit"), "not a chain file"),
], ids=["no-step2", "unknown-link", "non-numeric-param", "ragged-samples", "unpaired-replicates", "wrong-kind"])
def test_bad_chain_json_is_named(fitted, edit, message):
    data = json.loads(json.dumps(fitted.to_dict()))
    edit(data)
    with pytest.raises(InputError, match=message):
        from_dict(data, "chain.json")


def test_holdout_scores_the_largest_runs():
    result = fit_chain(ladder(noise=0.003), ChainConfig(target="acc:t", via="task_loss:t", holdout=_holdout(2)))
    h = result.holdout
    assert len(h["runs"]) == 2 and result.runs == 18
    assert h["mean_abs_relative_error"] < 0.04


def _holdout(k):
    from scalinglab.fitting.validate import parse_holdout

    return parse_holdout(f"largest-compute={k}")


def test_constant_target_is_refused():
    t = ladder().assign(**{"acc:t": 0.25})
    with pytest.raises(InputError, match="'acc:t' is constant"):
        fit_chain(t, ChainConfig(target="acc:t", via="task_loss:t"))


def test_link_with_fewer_points_than_parameters_is_refused():
    t = ladder(checkpoints=1).iloc[:3]  # three runs with one evaluation each: 3 points for 4 parameters
    with pytest.raises(InputError, match=r"step 2 \(sigmoid\) has 3 checkpoints to fit but 4 parameters"):
        fit_chain(t, ChainConfig(target="acc:t", via="task_loss:t"))


def test_anchor_at_zero_loss_with_the_pretraining_loss_as_via():
    # via = the canonical 'loss' column (strictly positive) and the helper point at loss 0 together.
    t = ladder().rename(columns={"task_loss:t": "loss"})
    at_zero = float(get_law("sigmoid").predict(STEP2, {"x": np.array([0.0])})[0])  # the true curve's value at 0
    result = fit_chain(t, ChainConfig(target="acc:t", via="loss", anchor=(0.0, at_zero), baseline=False))
    assert result.step2.x == "loss" and result.step2.n_points == len(link_rows(t, 0.1)) + 1
    assert abs(result.predict(TARGET_RUN)["target"]["value"] / truth(TARGET_RUN)[1] - 1) < 0.05
