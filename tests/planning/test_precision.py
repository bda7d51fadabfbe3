"""`fit --law ptq`, `predict --bits` and `plan --serve-bits` end to end (in-process CLI), and the served-loss math."""

import json

import numpy as np
import pytest
from tests.cli_run import run

from scalinglab.fitting.precision_file import PrecisionFit
from scalinglab.fitting.ptq_synthetic import synthetic_quant_ladder
from scalinglab.fitting.result import FitResult
from scalinglab.laws.ptq import KUMAR_BASE, KUMAR_PTQ
from scalinglab.laws.registry import get_law
from scalinglab.planning.compute_optimal import plan
from scalinglab.planning.precision import ServedLoss, plan_served


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ptq")
    synthetic_quant_ladder(sizes=(30e6, 80e6, 220e6), ratios_per_size=4).to_csv(d / "quant.csv", index=False)
    return d


@pytest.fixture(scope="module")
def served(files):
    """A fit file of L(N, D) + δ_PTQ written by the CLI (joint bootstrap)."""
    path = files / "served.json"
    with pytest.MonkeyPatch.context():
        from scalinglab.cli import main

        with pytest.raises(SystemExit) as exc:
            main(["fit", str(files / "quant.csv"), "--law", "ptq", "--base-law", "chinchilla", "--bootstrap", "30",
                  "--out", str(path), "--json"])
    assert exc.value.code == 0
    return path


@pytest.fixture(scope="module")
def exact(files):
    """A fit file holding the published constants exactly (no bootstrap): the math can be checked in closed form."""
    base, ptq = get_law("chinchilla"), get_law("ptq")
    def fr(law, p):
        return FitResult(law=law.name, formula=law.formula, params=dict(p), objective=0.0, n_points=0,
                         huber_delta=1e-3, theta=law.from_public(p).tolist(),
                         inputs={"params": [3e7, 2.2e8], "tokens": [1.5e8, 8.8e10]})
    pf = PrecisionFit(base=fr(base, KUMAR_BASE), ptq=fr(ptq, KUMAR_PTQ),
                      evaluations={"bits": [3.0, 6.0], "tokens_per_param": [5.0, 400.0], "runs": 12, "rows": 48})
    path = files / "exact.json"
    pf.save(path)
    return path


def test_predict_bits_adds_delta_to_the_float_loss(exact, capsys):
    code, out, _ = run(["predict", str(exact), "--params", "1e8", "--tokens", "5e9", "--bits", "4", "--json"], capsys)
    assert code == 0
    pred = json.loads(out)
    lf = KUMAR_BASE["A"] * 1e8 ** -KUMAR_BASE["alpha"] + KUMAR_BASE["B"] * 5e9 ** -KUMAR_BASE["beta"] + KUMAR_BASE["E"]
    d = KUMAR_PTQ["C_T"] * 5e9 ** KUMAR_PTQ["gamma_D"] / 1e8 ** KUMAR_PTQ["gamma_N"] * np.exp(-4 / KUMAR_PTQ["gamma_post"])
    assert pred["loss_float"]["value"] == pytest.approx(lf, rel=1e-10)
    assert pred["ptq_delta"]["value"] == pytest.approx(d, rel=1e-10)
    assert pred["loss"] == pytest.approx(lf + d, rel=1e-12)
    assert pred["warnings"] == []


def test_predict_bits_with_intervals_and_warnings(served, capsys):
    code, out, _ = run(["predict", str(served), "--params", "1e9", "--tokens", "2e10", "--bits", "4", "--json"], capsys)
    assert code == 0
    pred = json.loads(out)
    lo, hi = pred["interval"]
    assert lo < pred["loss"] < hi and pred["pairing"] == "same-runs" and pred["replicates"] == 30
    assert pred["ptq_delta"]["interval"][0] < pred["ptq_delta"]["value"] < pred["ptq_delta"]["interval"][1]
    assert any("largest model δ_PTQ was fitted on" in w for w in pred["warnings"])
    code, out, _ = run(["predict", str(served), "--params", "1e9", "--tokens", "2e10", "--bits", "4"], capsys)
    assert code == 0 and "loss after quantization" in out and "float loss L(N, D)" in out and "warning:" in out


def test_plan_float_part_matches_the_closed_form_and_serving_at_4_bits_favours_bigger_models(exact):
    pf = PrecisionFit.load(exact)
    for flops in (1e21, 1e23):
        p = plan_served(pf, flops, 4)
        ref = plan(pf.base, flops)  # Hoffmann et al. Eq. 4, closed form
        assert p["full_precision"]["params"] == pytest.approx(ref["params"], rel=1e-4)
        assert p["full_precision"]["loss"] == pytest.approx(ref["loss"], rel=1e-9)
        assert p["shift"]["params_ratio"] > 1 and p["shift"]["tokens_per_param_ratio"] < 1
        assert p["shift"]["loss_gain"] >= 0
        # The served optimum is a minimum of L + δ along C = 6ND.
        law = ServedLoss(get_law("chinchilla"), 4.0)
        theta = np.hstack([pf.base.theta, pf.ptq.theta])
        N = p["served"]["params"] * np.array([0.97, 1.0, 1.03])
        served = np.exp(law.log_predict(theta[None], law.prepare({"params": N, "tokens": flops / (6 * N)})))[0]
        assert served[1] < served[0] and served[1] < served[2]
        assert served[1] == pytest.approx(p["served"]["loss"], rel=1e-9)


def test_plan_at_16_bits_is_the_full_precision_plan(exact):
    p = plan_served(PrecisionFit.load(exact), 1e22, 16)
    assert p["shift"]["params_ratio"] == pytest.approx(1.0, abs=1e-3)


def test_plan_serve_bits_cli_with_intervals(served, capsys):
    code, out, _ = run(["plan", str(served), "--flops", "1e21", "--serve-bits", "4", "--json"], capsys)
    assert code == 0
    p = json.loads(out)
    for part in ("full_precision", "served", "shift"):
        assert set(p[part]["intervals"]) >= {k for k in p[part] if k != "intervals"}
    lo, hi = p["shift"]["intervals"]["params_ratio"]
    assert lo <= p["shift"]["params_ratio"] <= hi
    assert any("extrapolated" in w for w in p["warnings"])
    code, out, _ = run(["plan", str(served), "--flops", "1e21", "--serve-bits", "4"], capsys)
    assert code == 0 and "served at 4 bits" in out and "tokens per parameter" in out


@pytest.mark.parametrize(("argv", "expect"), [
    (["predict", "{served}", "--params", "1e9", "--tokens", "2e10", "--bits", "1"], "--bits: 1.0 is outside 2…16 bits"),
    (["plan", "{served}", "--flops", "1e21", "--serve-bits", "20"], "--serve-bits: 20.0 is outside 2…16 bits"),
    (["plan", "{served}", "--target-loss", "3", "--serve-bits", "4"], "give --flops (not --target-loss)"),
    (["predict", "{served}", "--tokens", "2e10", "--bits", "4"], "--bits needs --params"),
    (["predict", "{plain}", "--params", "1e9", "--tokens", "2e10", "--bits", "4"], "no 'ptq' section"),
    (["plan", "{ptq_only}", "--flops", "1e21", "--serve-bits", "4"], "holds δ_PTQ alone"),
    (["fit", "{nofloat}", "--law", "ptq"], "missing column 'loss_float'"),
    (["fit", "{quant}", "--law", "chinchilla", "--base-law", "chinchilla"], "go with --law ptq"),
    (["fit", "{quant}", "--law", "ptq", "--holdout", "largest-compute=1"], "largest-dn=K"),
    (["predict", "{tampered}", "--params", "1e9", "--tokens", "2e10", "--bits", "4"], "section 'ptq': params.gamma_D"),
], ids=["bits-low", "serve-bits-high", "target-loss", "no-params", "no-section", "no-base", "no-loss-float",
        "base-law-without-ptq", "holdout-rule", "tampered"])
def test_bad_input_is_one_line_and_exit_2(served, files, capsys, argv, expect):
    plain = files / "plain.json"
    data = json.loads(served.read_text())
    plain.write_text(json.dumps({k: v for k, v in data.items() if k != "ptq"}))
    (files / "ptq_only.json").write_text(json.dumps({k: v for k, v in data["ptq"].items()}))
    tampered = dict(data, ptq=dict(data["ptq"], params=dict(data["ptq"]["params"], gamma_D="x")))
    (files / "tampered.json").write_text(json.dumps(tampered))
    import pandas as pd

    pd.read_csv(files / "quant.csv").drop(columns="loss_float").to_csv(files / "nofloat.csv", index=False)
    names = {"served": served, "plain": plain, "ptq_only": files / "ptq_only.json", "nofloat": files / "nofloat.csv",
             "quant": files / "quant.csv", "tampered": files / "tampered.json"}
    code, out, err = run([a.format(**names) for a in argv], capsys)
    assert code == 2, (out, err)
    assert expect in err and err.count("\n") == 1, err


def test_fit_text_output_and_a_ptq_only_file(files, exact, capsys):
    out_path = files / "on_exact.json"
    code, out, err = run(["fit", str(files / "quant.csv"), "--law", "ptq", "--base", str(exact), "--holdout",
                          "largest-dn=1", "--out", str(out_path)], capsys)
    assert code == 0, err
    assert "gamma_post" in out and "held out N220M-x400.0 at 4 bits: measured" in out and "fit written to" in out
    assert json.loads(out_path.read_text())["law"] == "chinchilla"
    only = files / "only.json"
    code, _, err = run(["fit", str(files / "quant.csv"), "--law", "ptq", "--out", str(only)], capsys)
    assert code == 0, err
    code, out, _ = run(["predict", str(only), "--params", "1e8", "--tokens", "5e9", "--bits", "4", "--json"], capsys)
    pred = json.loads(out)
    assert code == 0 and "loss" not in pred and pred["ptq_delta"]["value"] > 0


def test_optimum_gives_nan_for_a_degenerate_replicate_and_plans_the_rest():
    """A bootstrap replicate with no finite loss on the IsoFLOP curve is a NaN row, not a crash."""
    import numpy as np

    from scalinglab.laws.registry import get_law
    from scalinglab.planning.compute_optimal import optimum

    law = get_law("chinchilla")
    good = law.from_public({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28})
    n_opt, loss = optimum(law, np.vstack([good, np.full_like(good, np.nan)]), 1e21)
    assert np.isfinite(n_opt[0]) and np.isfinite(loss[0])
    assert np.isnan(n_opt[1]) and np.isnan(loss[1])


def test_percentile_interval_of_overflowed_replicates_is_inf_not_nan():
    import numpy as np

    from scalinglab.fitting.bootstrap import percentile_ci

    samples = np.array([[1.0], [2.0], [np.inf], [np.inf], [np.inf]])
    lo, hi = percentile_ci(samples, 0.95)
    assert lo[0] >= 1.0 and hi[0] == np.inf
