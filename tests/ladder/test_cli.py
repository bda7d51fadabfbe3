"""CLI: `ladder run` / `ladder status` through the root app; bad specs exit 2 with one line."""

import json

import pytest
import yaml

from scalinglab.cli import main

SPEC = {
    "name": "cli",
    "corpus": {"kind": "synthetic", "markov": {"vocab_size": 8, "order": 1, "branching": 2}},
    "model": {"seq_len": 8, "d_model": 8, "n_layer": 1, "n_head": 1},
    "sizes": [{}],
    "tokens": [1024],
    "train": {"batch_size": 4, "n_evals": 2, "eval_seqs": 8},
}


def test_run_then_status(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    store = tmp_path / "runs.db"
    with pytest.raises(SystemExit) as exc:
        main(["ladder", "run", str(spec), "--store", str(store), "--workers", "1"])
    assert exc.value.code == 0
    assert "done 1, skipped 0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["ladder", "status", "--store", str(store)])
    out = capsys.readouterr().out
    assert "cli/d8-L1-h1/D1.02e+03/lr0.003/s0" in out and "done: 1" in out
    with pytest.raises(SystemExit):
        main(["ladder", "status", "--store", str(store), "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["run"] == "cli/d8-L1-h1/D1.02e+03/lr0.003/s0" and row["status"] == "done" and row["evals"] >= 1
    assert row["tokens"] > 0 and 0 < row["loss"] < 10


def test_bad_spec_exits_2(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "tokens": ["many"]}))
    with pytest.raises(SystemExit) as exc:
        main(["ladder", "run", str(spec), "--store", str(tmp_path / "r.db")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bad.yaml: tokens[0]: 'many' is not a number" in err and "Traceback" not in err
