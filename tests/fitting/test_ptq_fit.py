"""Quantized evaluations → δ_PTQ fit on top of a loss law: the table contract, the joint bootstrap, the file."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.precision_file import PrecisionFit
from scalinglab.fitting.ptq_fit import fit_ptq
from scalinglab.fitting.ptq_synthetic import synthetic_quant_ladder
from scalinglab.fitting.quant_evals import load_quant_evals
from scalinglab.fitting.result import FitResult
from scalinglab.laws.ptq import KUMAR_BASE


def _table(**kw):
    return synthetic_quant_ladder(sizes=(30e6, 80e6, 220e6), ratios_per_size=4, **kw)


@pytest.fixture(scope="module")
def joint():
    return fit_ptq(_table(), base_law="chinchilla", bootstrap=30, seed=1, holdout="largest-dn=1")


def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_delta_is_loss_minus_float_loss_and_nonpositive_rows_are_counted():
    t = _table(eval_noise=0.0)
    t.loc[0, "loss"] = t.loc[0, "loss_float"] - 1e-4  # 8-bit-like noise: the loss went down
    ev = load_quant_evals(t)
    assert ev.excluded_nonpositive == 1 and len(ev.rows) == len(t) - 1
    np.testing.assert_allclose(ev.rows["ptq_delta"], ev.rows["loss"] - ev.rows["loss_float"])
    assert ev.summary["runs"] == 12 and ev.summary["bits"] == [3.0, 6.0]


def test_runs_without_a_run_column_are_grouped_by_params_tokens_and_float_loss():
    ev = load_quant_evals(_table().drop(columns="run"))
    assert ev.rows["run"].nunique() == 12 and len(ev.runs) == 12


@pytest.mark.parametrize(("edit", "expect"), [
    (lambda t: t.drop(columns="loss_float"), "missing column 'loss_float'"),
    (lambda t: t.assign(bits=t["bits"].where(t.index != 5, 1.0)), "row 6, field 'bits': 1 is outside 2…16 bits"),
    (lambda t: t.assign(bits=t["bits"].where(t.index != 2, 17.0)), "row 3, field 'bits': 17 is outside"),
    (lambda t: t.assign(method=["rtn", "squant"] * (len(t) // 2)), "mixes quantization methods (rtn, squant)"),
    (lambda t: t.assign(loss_float=t["loss_float"].where(t.index != 1, 9.0)), "row 2, field 'loss_float'"),
    (lambda t: pd.concat([t, t.iloc[[3]].assign(loss=t["loss"].iloc[3] + 0.01)]), "both give run"),
    (lambda t: t.assign(loss=t["loss_float"] - 0.01), "no row has loss > loss_float"),
    (lambda t: t.assign(tokens=t["tokens"].where(t.index != 0, "n/a")), "row 1, field 'tokens': 'n/a' is not a number"),
], ids=["no-loss-float", "bits-below-2", "bits-above-16", "mixed-methods", "two-float-losses", "repeated-bits",
        "no-degradation", "text-in-tokens"])
def test_bad_tables_are_one_line_errors(edit, expect):
    with pytest.raises(InputError) as exc:
        load_quant_evals(edit(_table()), source="q.csv")
    assert expect in _one_line(exc)


def test_method_filter_picks_one():
    t = _table()
    t2 = t.assign(method="rtn", loss=t["loss"] + 0.05)
    ev = load_quant_evals(pd.concat([t, t2], ignore_index=True), method="rtn")
    assert ev.method == "rtn" and np.all(ev.rows["ptq_delta"] > 0.04)
    with pytest.raises(InputError) as exc:
        load_quant_evals(t, method="gptq")
    assert "'gptq' is not in the table's 'method' column" in _one_line(exc)


def test_joint_bootstrap_pairs_replicates_on_the_same_runs(joint):
    assert joint.pairing == "same-runs"
    nb, nq = joint.base.samples_matrix(), joint.ptq.samples_matrix()
    assert nb.shape[0] == nq.shape[0] == 30
    assert joint.base.law == "chinchilla" and joint.ptq.law == "ptq"
    # The base law was fitted to one float loss per fitted run (the held-out run is not among them).
    assert joint.base.n_points == 11 and joint.evaluations["runs"] == 11


def test_holdout_scores_the_largest_tokens_per_parameter_run(joint):
    h = joint.holdout
    assert h["rule"] == "largest-dn=1" and h["n"] == 4
    assert {r["run"] for r in h["rows"]} == {"N220M-x400.0"}
    assert h["inside"] == 4, h["rows"]
    # The one-run interval adds the fits' scatter: it contains the confidence interval, and the measurements.
    for r in h["rows"]:
        assert r["prediction_interval"][0] <= r["interval"][0] and r["interval"][1] <= r["prediction_interval"][1]
    assert h["inside_prediction"] == 4 and h["delta_inside_prediction"] == 4, h["rows"]
    scatter = joint.evaluations["scatter"]
    assert 0.02 < scatter["ptq_log_sd"] < 0.2 and 0.0 < scatter["base_log_sd"] < 0.02  # synthetic: 5 % and 0.5 %
    assert joint.evaluations["tokens_per_param"][1] < 400.0


def test_file_round_trip_keeps_the_base_readable_as_a_plain_fit(joint, tmp_path):
    path = tmp_path / "served.json"
    joint.save(path)
    back = PrecisionFit.load(path)
    assert back.ptq.params == pytest.approx(joint.ptq.params) and back.pairing == "same-runs"
    assert back.holdout["inside"] == 4
    plain = FitResult.load(path)  # any fit reader still sees L(N, D)
    assert plain.law == "chinchilla" and plain.params == pytest.approx(joint.base.params)


def _tamper(joint, tmp_path, edit):
    data = joint.to_dict()
    edit(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        PrecisionFit.load(path)
    return _one_line(exc)


@pytest.mark.parametrize(("edit", "expect"), [
    (lambda d: d["ptq"]["params"].update(C_T=1.0), "section 'ptq': 'params' and 'theta' disagree (log_C_T"),
    (lambda d: d["ptq"]["params"].pop("gamma_post"), "section 'ptq': 'params' lacks 'gamma_post'"),
    (lambda d: d["ptq"].update(law="chinchilla"), "section 'ptq'"),
    (lambda d: d["ptq"].update(pairing="shuffled"), "'pairing' = 'shuffled' must be one of"),
    (lambda d: d["ptq"]["evaluations"].update(bits=[1, 4]), "evaluations.bits [1, 4] is outside"),
    (lambda d: d["ptq"]["bootstrap"]["samples"]["gamma_D"].pop(), "bootstrap.samples lists have different lengths"),
    (lambda d: d["ptq"]["theta"].__setitem__(3, -1.0), "theta[3] (kappa) = -1 is outside the law's range"),
    (lambda d: d.update(ptq=[1, 2]), "section 'ptq': expected an object"),
    (lambda d: d["ptq"]["evaluations"]["scatter"].update(ptq_log_sd=-1), "evaluations.scatter.ptq_log_sd = -1"),
], ids=["params-vs-theta", "missing-param", "wrong-law", "pairing", "bits-range", "samples", "kappa-range", "not-object",
        "scatter"])
def test_tampered_ptq_section_is_one_line(joint, tmp_path, edit, expect):
    assert expect in _tamper(joint, tmp_path, edit)


def test_base_from_a_file_pairs_independently(tmp_path):
    from scalinglab.fitting.api import fit
    from scalinglab.fitting.synthetic import chinchilla_grid

    base = fit(chinchilla_grid(n_sizes=5, n_tokens=5, noise=0.005, params=KUMAR_BASE, n_range=(3e7, 3e8)),
               "chinchilla", bootstrap=20)
    base.save(tmp_path / "base.json")
    pf = fit_ptq(_table(), base=tmp_path / "base.json", bootstrap=25)
    assert pf.pairing == "independent" and pf.base.params == pytest.approx(base.params)
    assert pf.ptq.bootstrap.n == 25


def test_base_must_be_a_law_of_params_and_tokens(tmp_path):
    with pytest.raises(InputError) as exc:
        fit_ptq(_table(), base_law="sigmoid")
    assert "not a loss law of params and tokens" in _one_line(exc)


def _store(path, table):
    """A run store holding ``table``'s runs as finished ladder runs, with rtn evaluations per channel and per group."""
    from scalinglab.runs.quant_evals import add_quant_eval
    from scalinglab.runs.store import RunStore

    with RunStore(path) as s:
        for run, rows in table.groupby("run", sort=False):
            N, D, lf = (float(rows[c].iloc[0]) for c in ("params", "tokens", "loss_float"))
            s.register(run, params=int(N), params_total=int(N), flops_per_token=6 * N, tokens_target=int(D), config={})
            s.add_metric(run, 10, int(D), 6 * N * D, lf)
            s.update(run, status="done")
            for r in rows.itertuples():
                for group, extra in ((0, 0.0), (8, -0.3)):  # per-group scales: a smaller increase
                    add_quant_eval(s, run, ("rtn", int(r.bits), "none", group), {}, lf + (r.loss - lf) * (1 + extra), lf,
                                   1000)
    return path


def test_fit_reads_a_run_stores_quantized_evaluations(tmp_path):
    path = _store(tmp_path / "runs.db", _table(eval_noise=0.0))
    with pytest.raises(InputError) as exc:
        load_quant_evals(path, method="rtn")
    assert "configs differ in group_size: choose one with --quant-method rtn:group_size=VALUE" in _one_line(exc)
    per_channel = load_quant_evals(path, method="rtn:group_size=0")
    grouped = load_quant_evals(path, method="rtn:group_size=8,activations=none")
    assert len(per_channel.rows) == len(grouped.rows) == 48 and per_channel.summary["runs"] == 12
    np.testing.assert_allclose(grouped.rows["ptq_delta"], 0.7 * per_channel.rows["ptq_delta"], rtol=1e-6)
    assert grouped.summary["method"] == "rtn:group_size=8,activations=none"
    pf = fit_ptq(path, method="rtn:group_size=0")
    assert pf.ptq.params["gamma_D"] == pytest.approx(0.5068, abs=0.03)
    with pytest.raises(InputError) as exc:
        load_quant_evals(path, method="rtn:group_size=64")
    assert "no rtn rows with group_size=64 (found: 0, 8)" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        load_quant_evals(path, method="rtn:bits=4")
    assert "is not of the form key=value with key one of activations, group_size" in _one_line(exc)


def test_a_store_without_quantized_evaluations_is_one_line(tmp_path):
    from scalinglab.runs.store import RunStore

    with RunStore(tmp_path / "empty.db"):
        pass
    with pytest.raises(InputError) as exc:
        load_quant_evals(tmp_path / "empty.db")
    assert "holds no quantized evaluations" in _one_line(exc)
