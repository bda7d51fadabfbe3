"""Tampered fit JSON files through `predict` and `plan`: refused in one line, or the numbers the file states.

Each class is one way to break a fit file (law swapped, parameters short, ragged, text or NaN, bootstrap
level 5, α = −5, E missing, ...) crossed with the two commands that read fits; a property test then
writes arbitrary JSON values at arbitrary places and checks that an accepted file predicts exactly what
its own parameters say.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import chinchilla_loss, fit_document
from .harness import assert_refused, run_cli

N, D = 1e9, 2e10


def _set(path: tuple, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(path: tuple):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _replace(value):
    return lambda doc: value


NAN = float("nan")
TAMPER = {
    # id → (edit, words the error must contain)
    "law-swapped-kaplan": (_set(("law",), "kaplan"), "N_c"),
    "law-swapped-compute": (_set(("law",), "compute"), "compute"),
    "law-swapped-data-constrained": (_set(("law",), "data-constrained"), "R_D_star"),
    "law-unknown": (_set(("law",), "gpt"), "unknown law"),
    "law-number": (_set(("law",), 3), "'law'"),
    "law-missing": (_drop(("law",)), "'law'"),
    "params-missing": (_drop(("params",)), "'params'"),
    "params-list": (_set(("params",), [1, 2, 3, 4, 5]), "'params'"),
    "E-missing": (_drop(("params", "E")), "lacks 'E'"),
    "extra-param": (_set(("params", "G"), 1.0), "'G'"),
    "alpha-minus-5": (lambda d: (d["params"].update(alpha=-5.0), d["theta"].__setitem__(3, -5.0)), "negative"),
    "beta-negative": (lambda d: (d["params"].update(beta=-0.1), d["theta"].__setitem__(4, -0.1)), "negative"),
    "alpha-text": (_set(("params", "alpha"), "0.34"), "params.alpha"),
    "alpha-bool": (_set(("params", "alpha"), True), "params.alpha"),
    "alpha-null": (_set(("params", "alpha"), None), "params.alpha"),
    "alpha-nan": (_set(("params", "alpha"), NAN), "params.alpha"),
    "alpha-inf": (_set(("params", "alpha"), float("inf")), "params.alpha"),
    "alpha-list": (_set(("params", "alpha"), [0.3]), "params.alpha"),
    "A-negative": (_set(("params", "A"), -406.4), "outside the law's range"),
    "E-zero": (_set(("params", "E"), 0.0), "outside the law's range"),
    "params-disagree-theta": (_set(("params", "A"), 999.0), "disagree"),
    "theta-missing": (_drop(("theta",)), "'theta'"),
    "theta-short": (lambda d: d.update(theta=d["theta"][:3]), "5 numbers"),
    "theta-long": (lambda d: d.update(theta=d["theta"] + [1.0]), "5 numbers"),
    "theta-text": (lambda d: d["theta"].__setitem__(0, "x"), "theta[0]"),
    "theta-nan": (lambda d: d["theta"].__setitem__(1, NAN), "theta[1]"),
    "theta-object": (_set(("theta",), {"a": 1}), "'theta'"),
    "level-5": (_set(("bootstrap", "level"), 5), "bootstrap.level"),
    "level-0": (_set(("bootstrap", "level"), 0), "bootstrap.level"),
    "level-1": (_set(("bootstrap", "level"), 1), "bootstrap.level"),
    "level-text": (_set(("bootstrap", "level"), "95%"), "bootstrap.level"),
    "level-nan": (_set(("bootstrap", "level"), NAN), "bootstrap.level"),
    "boot-n-zero": (_set(("bootstrap", "n"), 0), "bootstrap.n"),
    "boot-n-bool": (_set(("bootstrap", "n"), True), "bootstrap.n"),
    "boot-n-float": (_set(("bootstrap", "n"), 8.5), "bootstrap.n"),
    "boot-failed-negative": (_set(("bootstrap", "failed"), -1), "bootstrap.failed"),
    "boot-not-object": (_set(("bootstrap",), [1]), "'bootstrap'"),
    "samples-missing": (_drop(("bootstrap", "samples")), "samples"),
    "samples-one-missing": (_drop(("bootstrap", "samples", "beta")), "'beta'"),
    "samples-empty": (_set(("bootstrap", "samples", "E"), []), "'E'"),
    "samples-ragged": (lambda d: d["bootstrap"]["samples"].update(alpha=d["bootstrap"]["samples"]["alpha"][:3]),
                       "different lengths"),
    "samples-text": (lambda d: d["bootstrap"]["samples"]["A"].__setitem__(0, "x"), "samples.A[0]"),
    "samples-extra": (_set(("bootstrap", "samples", "Z"), [1.0] * 8), "'Z'"),
    "samples-more-than-n": (_set(("bootstrap", "n"), 2), "more replicates"),
    "samples-not-object": (_set(("bootstrap", "samples"), [[1]]), "samples"),
    "ci-missing": (_drop(("bootstrap", "ci")), "'ci'"),
    "ci-short-pair": (_set(("bootstrap", "ci", "E"), [1.0]), "ci.E"),
    "ci-text": (_set(("bootstrap", "ci", "E"), ["a", "b"]), "ci.E"),
    "inputs-not-object": (_set(("inputs",), [1]), "'inputs'"),
    "inputs-zero-max": (_set(("inputs", "params"), [0, 0]), "inputs.params"),
    "inputs-reversed": (_set(("inputs", "params"), [1e9, 1e7]), "inputs.params"),
    "inputs-unknown": (_set(("inputs", "colour"), [1, 2]), "colour"),
    "n-points-negative": (_set(("n_points",), -1), "n_points"),
    "formula-number": (_set(("formula",), 3), "'formula'"),
    "holdout-list": (_set(("holdout",), [1]), "'holdout'"),
    "document-list": (_replace([1, 2]), "got list"),
    "document-null": (_replace(None), "got NoneType"),
    "document-string": (_replace("fit"), "got str"),
}
RAW = {
    "empty-file": ("", "not a fit JSON"),
    "truncated": ('{"law": "chinchilla", "params": {', "not a fit JSON"),
    "latin-1": (b'{"law": "chinchilla\xe9"}', "not a fit JSON"),
    "deep-nesting": ("[" * 100000 + "]" * 100000, "fit"),
}


def _write_doc(path, doc) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def _args(cmd: str, path: str) -> list[str]:
    return ["predict", path, "--params", str(N), "--tokens", str(D)] if cmd == "predict" else ["plan", path, "--flops", "1e21"]


CLASSES = [(case, cmd) for case in TAMPER for cmd in ("predict", "plan")]
RAW_CLASSES = [(case, cmd) for case in RAW for cmd in ("predict", "plan")]


@pytest.mark.parametrize(("case", "cmd"), CLASSES, ids=[f"{c}-{m}" for c, m in CLASSES])
def test_tampered_fit_is_refused(tmp_path, fit_doc, case, cmd):
    edit, needle = TAMPER[case]
    doc = copy.deepcopy(fit_doc)
    replaced = edit(doc)
    if case.startswith("document-"):
        doc = replaced
    assert_refused(run_cli(_args(cmd, _write_doc(tmp_path / "fit.json", doc))), needle)


@pytest.mark.parametrize(("case", "cmd"), RAW_CLASSES, ids=[f"{c}-{m}" for c, m in RAW_CLASSES])
def test_unreadable_fit_file_is_refused(tmp_path, case, cmd):
    text, needle = RAW[case]
    p = tmp_path / "fit.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_refused(run_cli(_args(cmd, str(p))), needle)


FLAGS = {
    "predict-params-inf": (["predict", "{fit}", "--params", "inf", "--tokens", "1e10"], "--params"),
    "predict-params-nan": (["predict", "{fit}", "--params", "nan", "--tokens", "1e10"], "--params"),
    "predict-tokens-negative": (["predict", "{fit}", "--params", "1e9", "--tokens", "-1"], "--tokens"),
    "predict-params-text": (["predict", "{fit}", "--params", "abc", "--tokens", "1e10"], "--params"),
    "predict-missing-tokens": (["predict", "{fit}", "--params", "1e9"], "--tokens"),
    "plan-flops-inf": (["plan", "{fit}", "--flops", "inf"], "--flops"),
    "plan-flops-nan": (["plan", "{fit}", "--flops", "nan"], "--flops"),
    "plan-flops-tiny": (["plan", "{fit}", "--flops", "1"], "--flops"),
    "plan-target-nan": (["plan", "{fit}", "--target-loss", "nan"], "--target-loss"),
    "plan-target-inf": (["plan", "{fit}", "--target-loss", "inf"], "--target-loss"),
    "plan-target-below-E": (["plan", "{fit}", "--target-loss", "1.0"], "irreducible"),
    "plan-both": (["plan", "{fit}", "--flops", "1e21", "--target-loss", "2"], "exactly one"),
    "plan-neither": (["plan", "{fit}"], "exactly one"),
    "fit-missing-file": (["predict", "{dir}/none.json", "--params", "1"], "no such fit file"),
    "fit-is-directory": (["predict", "{dir}", "--params", "1"], "is a directory"),
}


@pytest.mark.parametrize("case", list(FLAGS), ids=list(FLAGS))
def test_bad_flags_are_refused(tmp_path, fit_doc, case):
    argv, needle = FLAGS[case]
    fit = _write_doc(tmp_path / "fit.json", fit_doc)
    assert_refused(run_cli([a.format(fit=fit, dir=tmp_path) for a in argv]), needle)


@pytest.mark.parametrize("law", ["data-constrained", "data_constrained", "Data-Constrained"])
def test_law_names_accept_dash_and_underscore(tmp_path, law):
    """Correct result: the same prediction whichever spelling the file uses."""
    import numpy as np

    from scalinglab.laws.data_constrained import DataConstrained

    dc = DataConstrained()
    public = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.35, "beta": 0.35, "R_D_star": 15.4, "R_N_star": 5.3}
    doc = {"law": law, "params": public, "theta": dc.from_public(public).tolist()}
    out = run_cli(["predict", _write_doc(tmp_path / "fit.json", doc), "--params", "6.34e9", "--tokens", "242e9",
                   "--unique-tokens", "25e9", "--json"])
    assert out.code == 0, out.describe()
    want = float(dc.predict(public, {"params": 6.34e9, "tokens": 242e9, "unique_tokens": 25e9})[0])
    assert json.loads(out.out)["loss"] == pytest.approx(want, rel=1e-12) and np.isfinite(want)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                        st.lists(st.floats(-10, 10), max_size=6))
PATHS = [("law",), ("params", "E"), ("params", "A"), ("params", "B"), ("params", "alpha"), ("params", "beta"),
         ("theta", 0), ("theta", 3), ("theta",), ("bootstrap", "level"), ("bootstrap", "n"), ("bootstrap", "failed"),
         ("bootstrap", "samples", "alpha"), ("bootstrap", "ci", "beta"), ("inputs", "params"), ("n_points",)]


@settings(max_examples=50, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_any_edit_is_refused_or_predicts_what_the_file_says(tmp_path_factory, path, value):
    """Property: an edited fit file is refused in one line, or predicts exactly E + A·N^-α + B·D^-β of its params."""
    doc = fit_document()
    _set(path, value)(doc)
    p = _write_doc(tmp_path_factory.mktemp("fit") / "fit.json", doc)
    out = run_cli(["predict", p, "--params", str(N), "--tokens", str(D), "--json"])
    if out.code == 0:
        got = json.loads(out.out)
        assert got["loss"] == pytest.approx(chinchilla_loss(doc["params"], N, D), rel=1e-9)
        lo, hi = got["interval"]
        assert lo <= hi
    else:
        assert out.refused, out.describe()


CLASS_COUNT = len(CLASSES) + len(RAW_CLASSES) + len(FLAGS) + 3 + 2


def test_rising_loss_is_not_returned_as_a_fit(tmp_path):
    """Loss that grows with N and D gives negative exponents: refused, not written as a fit."""
    import numpy as np
    import pandas as pd

    n = np.repeat(np.geomspace(1e7, 1e9, 4), 4)
    d = np.tile(np.geomspace(1e9, 1e11, 4), 4)
    p = tmp_path / "rising.csv"
    pd.DataFrame({"params": n, "tokens": d, "loss": 1.5 + 1e-3 * n**0.3 + 1e-3 * d**0.2}).to_csv(p, index=False)
    out = run_cli(["fit", p, "--out", tmp_path / "fit.json"])
    assert_refused(out, "< 0", "rising")
    assert not (tmp_path / "fit.json").exists()


def test_too_few_rows_names_the_law_parameter_count(tmp_path):
    p = tmp_path / "few.csv"
    p.write_text("params,tokens,loss\n1e8,1e9,3\n2e8,1e9,2.9\n1e8,2e9,2.9\n2e8,2e9,2.8\n")
    assert_refused(run_cli(["fit", p, "--law", "chinchilla"]), "the law has 5 parameters", "need at least 6 rows")
    assert_refused(run_cli(["fit", p, "--law", "data-constrained"]), "unique_tokens")
