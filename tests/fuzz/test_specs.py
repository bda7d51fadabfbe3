"""Ladder specs through `scalinglab ladder run`: refused in one line before any job starts, or expanded right.

The executor is replaced by a recorder, so no model trains: an accepted spec must yield jobs whose
settings are exactly the spec's (right types, in range).
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import assert_refused, run_cli

BASE = {
    "name": "t",
    "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
    "model": {"seq_len": 16},
    "sizes": [{"d_model": 16, "n_layer": 1, "n_head": 1}],
    "tokens": [1000],
    "train": {"batch_size": 8},
}


@pytest.fixture
def recorded(monkeypatch):
    """Replace the executor: record the jobs a spec expands to instead of training them."""
    import scalinglab.ladder.executors as ex

    jobs = []

    class Summary:
        done, skipped, failed, seconds = [], [], {}, 0.0

    def fake(spec, store, **kw):
        jobs.extend(spec.jobs)
        return Summary()

    monkeypatch.setattr(ex, "run_ladder", fake)
    return jobs


def _spec(tmp_path, doc, name="spec.yaml", text=None) -> str:
    p = tmp_path / name
    if text is not None:
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        p.write_text(yaml.safe_dump(doc))
    return str(p)


def _with(section, key, value):
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    if section == "top":
        doc[key] = value
    elif section == "size":
        doc["sizes"] = [{**BASE["sizes"][0], key: value}]
    elif section == "markov":
        doc["corpus"] = {"kind": "synthetic", "markov": {**BASE["corpus"]["markov"], key: value}}
    else:
        doc[section] = {**doc.get(section, {}), key: value}
    return doc


BAD = {
    "tokens-inf": (_with("top", "tokens", [float("inf")]), "not a finite number"),
    "tokens-nan": (_with("top", "tokens", [float("nan")]), "not a finite number"),
    "tokens-bool": (_with("top", "tokens", [True]), "boolean"),
    "tokens-text": (_with("top", "tokens", ["lots"]), "not a number"),
    "tokens-empty": (_with("top", "tokens", []), "non-empty list"),
    "tokens-scalar": (_with("top", "tokens", 1000), "non-empty list"),
    "tokens-per-param-tiny": ({**{k: v for k, v in BASE.items() if k != "tokens"}, "tokens_per_param": [1e-9]}, ">= 1"),
    "isoflop-negative": ({**{k: v for k, v in BASE.items() if k != "tokens"}, "isoflop": [-1]}, "must be > 0"),
    "two-budgets": (_with("top", "isoflop", [1e9]), "exactly one"),
    "lrs-inf": (_with("top", "lrs", [float("inf")]), "lrs[0]"),
    "seeds-fraction": (_with("top", "seeds", [1.5]), "integer"),
    "seeds-negative": (_with("top", "seeds", [-1]), "seeds[0]"),
    "corpus-list": (_with("top", "corpus", [1, 2]), "corpus"),
    "train-list": (_with("top", "train", [1]), "train"),
    "model-list": (_with("top", "model", [1]), "model"),
    "sizes-table": (_with("top", "sizes", {"d_model": 16}), "sizes"),
    "sizes-entry-list": (_with("top", "sizes", [[16]]), "sizes[0]"),
    "markov-list": ({**BASE, "corpus": {"kind": "synthetic", "markov": [1]}}, "markov"),
    "markov-8TiB": (_with("markov", "vocab_size", 2**20), "GiB"),
    "markov-contexts": (_with("markov", "order", 8), "contexts"),
    "markov-branching": (_with("markov", "branching", 99), "branching"),
    "markov-unknown": (_with("markov", "colour", 1), "unknown field 'colour'"),
    "d_model-true": (_with("size", "d_model", True), "'d_model'"),
    "d_model-float": (_with("size", "d_model", 16.5), "'d_model'"),
    "d_model-65536": (_with("size", "d_model", 65536), "GiB"),
    "n_head-zero": (_with("size", "n_head", 0), "n_head"),
    "n_head-indivisible": (_with("size", "n_head", 3), "divisible"),
    "norm-unknown": (_with("size", "norm", "batchnorm"), "norm"),
    "bias-text": (_with("size", "bias", "yes"), "'bias'"),
    "vocab-4": (_with("model", "vocab_size", 4), "vocab_size 4"),
    "init-std-inf": (_with("size", "init_std", float("inf")), "init_std"),
    "size-unknown": (_with("size", "width", 3), "unknown field 'width'"),
    "batch-2.5": (_with("train", "batch_size", 2.5), "'batch_size'"),
    "batch-true": (_with("train", "batch_size", True), "'batch_size'"),
    "batch-zero": (_with("train", "batch_size", 0), "batch_size"),
    "beta1-2": (_with("train", "beta1", 2.0), "'beta1'"),
    "beta2-1": (_with("train", "beta2", 1.0), "'beta2'"),
    "beta1-negative": (_with("train", "beta1", -0.1), "'beta1'"),
    "weight-decay-negative": (_with("train", "weight_decay", -1.0), "weight_decay"),
    "grad-clip-negative": (_with("train", "grad_clip", -1.0), "grad_clip"),
    "n_evals-1e9-text": (_with("train", "n_evals", "1e9"), "'n_evals'"),
    "n_evals-1e9": (_with("train", "n_evals", 10**9), "'n_evals'"),
    "lr-nan": (_with("train", "lr", float("nan")), "'lr'"),
    "lr-zero": (_with("train", "lr", 0.0), "lr"),
    "schedule-unknown": (_with("train", "schedule", "linear"), "schedule"),
    "precision-unknown": (_with("train", "precision", "fp8"), "precision"),
    "warmup-2": (_with("train", "warmup_frac", 2.0), "warmup_frac"),
    "checkpoint-zero": (_with("train", "checkpoint_every_s", 0.0), "checkpoint_every_s"),
    "train-unknown": (_with("train", "learning_rate", 1.0), "unknown field 'learning_rate'"),
    "top-unknown": (_with("top", "colour", 1), "unknown field 'colour'"),
    "name-slash": (_with("top", "name", "../x"), "name"),
    "corpus-kind": (_with("corpus", "kind", "web"), "kind"),
    "corpus-paths-number": ({**BASE, "corpus": {"kind": "text", "paths": 5}}, "paths"),
    "corpus-vocab-small": ({**BASE, "corpus": {"kind": "text", "paths": ["x.txt"], "vocab_size": 100}}, "vocab_size"),
    "top-list": ([1, 2], "mapping"),
}
RAW = {
    "latin-1": ("spec.yaml", "name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    "yaml-invalid": ("spec.yaml", "a: [", "cannot parse"),
    "toml-invalid": ("spec.toml", "a = ", "cannot parse"),
    "json-invalid": ("spec.json", "{", "cannot parse"),
    "unknown-suffix": ("spec.ini", "a=1", "unknown spec type"),
    "yaml-date": ("spec.yaml", yaml.safe_dump(BASE).replace("batch_size: 8", "batch_size: 2001-01-01"), "'batch_size'"),
    "toml-datetime": ("spec.toml", 'tokens = [1979-05-27]\n[[sizes]]\nd_model = 16\n', "tokens[0]"),
    "empty": ("spec.yaml", "", "mapping"),
}
FLAGS = {
    "threads-minus-1": (["--threads", "-1"], "--threads"),
    "workers-zero": (["--workers", "0"], "--workers"),
    "executor-unknown": (["--executor", "slurm"], "--executor"),
    "threads-text": (["--threads", "many"], "--threads"),
}
CLASSES = len(BAD) + len(RAW) + len(FLAGS)


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_spec_is_refused_before_any_job(tmp_path, recorded, case):
    doc, needle = BAD[case]
    assert_refused(run_cli(["ladder", "run", _spec(tmp_path, doc), "--store", tmp_path / "s.db"]), needle)
    assert recorded == []


@pytest.mark.parametrize("case", list(RAW), ids=list(RAW))
def test_unreadable_spec_is_refused(tmp_path, recorded, case):
    name, text, needle = RAW[case]
    assert_refused(run_cli(["ladder", "run", _spec(tmp_path, None, name, text), "--store", tmp_path / "s.db"]), needle)
    assert recorded == []


@pytest.mark.parametrize("case", list(FLAGS), ids=list(FLAGS))
def test_bad_run_flags_are_refused(tmp_path, recorded, case):
    flags, needle = FLAGS[case]
    assert_refused(run_cli(["ladder", "run", _spec(tmp_path, BASE), "--store", tmp_path / "s.db", *flags]), needle)


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=4), st.lists(st.integers(0, 4), max_size=2))
FIELDS = [("train", "batch_size"), ("train", "beta1"), ("train", "lr"), ("train", "n_evals"), ("train", "grad_accum"),
          ("size", "d_model"), ("size", "n_layer"), ("size", "mlp_ratio"), ("markov", "branching"), ("markov", "order")]


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(FIELDS), value=VALUES)
def test_any_setting_is_refused_or_kept_exactly(tmp_path_factory, where, value):
    """Property: a spec value is refused in one line, or every job carries exactly that value."""
    import scalinglab.ladder.executors as ex

    tmp = tmp_path_factory.mktemp("spec")
    jobs = []
    original = ex.run_ladder
    ex.run_ladder = lambda spec, store, **kw: jobs.extend(spec.jobs) or ex.LadderSummary()
    try:
        out = run_cli(["ladder", "run", _spec(tmp, _with(*where, value)), "--store", tmp / "s.db"])
    finally:
        ex.run_ladder = original
    if out.code != 0:
        assert out.refused, out.describe()
        return
    section, key = where
    obj = {"train": lambda j: j.train, "size": lambda j: j.model, "markov": lambda j: j.corpus.markov}[section]
    for job in jobs:
        got = getattr(obj(job), key)
        assert got == value and type(got) is type(value), (where, value, got)
