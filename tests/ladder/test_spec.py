"""Ladder specs: grid expansion, budgets, file formats and one-line errors."""

import pytest

from scalinglab.errors import InputError
from scalinglab.ladder.flops import flops_per_token, non_embedding_params
from scalinglab.ladder.spec import Job, load_spec, parse_spec

BASE = {
    "name": "t",
    "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
    "model": {"seq_len": 16},
    "sizes": [{"d_model": 16, "n_layer": 1, "n_head": 1}, {"d_model": 32, "n_layer": 2, "n_head": 2}],
    "train": {"batch_size": 8},
}


def test_grid_expansion_tokens_lrs_seeds():
    spec = parse_spec({**BASE, "tokens": [1000, 2000], "lrs": [1e-3, 3e-3], "seeds": [0, 1]})
    assert len(spec.jobs) == 2 * 2 * 2 * 2
    assert len({j.run for j in spec.jobs}) == 16
    assert {j.train.tokens for j in spec.jobs} == {1000, 2000}
    assert all(j.model.vocab_size == 16 for j in spec.jobs)
    job = spec.jobs[0]
    assert Job.from_dict(job.to_dict()) == job


def test_tokens_per_param_and_isoflop():
    spec = parse_spec({**BASE, "tokens_per_param": [20]})
    for j in spec.jobs:
        assert j.train.tokens == int(20 * non_embedding_params(j.model))
    iso = parse_spec({**BASE, "isoflop": [1e10]})
    for j in iso.jobs:
        assert j.train.tokens == int(1e10 / flops_per_token(j.model))


@pytest.mark.parametrize("raw, match", [
    ({**BASE}, "exactly one of"),
    ({**BASE, "tokens": [1], "tokens_per_param": [2]}, "exactly one of"),
    ({**BASE, "tokens": ["lots"]}, r"tokens\[0\]"),
    ({**BASE, "tokens": [1000], "sizes": [{"d_model": 30, "n_head": 4}]}, r"sizes\[0\]"),
    ({**BASE, "tokens": [1000], "train": {"lr": -1}}, "lr"),
    ({**BASE, "tokens": [1000], "train": {"learning_rate": 1}}, "unknown field 'learning_rate'"),
    ({**BASE, "tokens": [1000], "colour": 1}, "unknown field 'colour'"),
    ({**BASE, "tokens": [1000], "corpus": {"kind": "web"}}, "corpus"),
], ids=["no-budget", "two-budgets", "bad-number", "bad-size", "bad-lr", "unknown-train-field", "unknown-top",
        "bad-corpus"])
def test_bad_specs_are_input_errors(raw, match):
    with pytest.raises(InputError, match=match):
        parse_spec(raw, "spec.yaml")


def test_load_yaml_toml_json(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "name: y\ncorpus: {kind: synthetic}\nsizes: [{d_model: 16, n_head: 1}]\ntokens: [1.0e4]\n")
    (tmp_path / "b.toml").write_text('name = "t"\ntokens = [10000]\n[[sizes]]\nd_model = 16\nn_head = 1\n')
    (tmp_path / "c.json").write_text('{"sizes": [{"d_model": 16, "n_head": 1}], "tokens": [10000]}')
    for name in ("a.yaml", "b.toml", "c.json"):
        assert len(load_spec(tmp_path / name).jobs) == 1
    assert load_spec(tmp_path / "c.json").name == "c"
    (tmp_path / "bad.yaml").write_text("sizes: [\n")
    with pytest.raises(InputError, match="bad.yaml: cannot parse"):
        load_spec(tmp_path / "bad.yaml")
