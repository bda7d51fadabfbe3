"""`scalinglab chain`, `predict CHAIN` and `fit --target/--x` as a user runs them: files in, JSON out, exit 2."""

from __future__ import annotations

import json

import pytest
from tests.cli_run import run
from tests.fitting.test_chain import ladder

from scalinglab.cli import main


@pytest.fixture(scope="module")
def evals_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("chain") / "evals.csv"
    t = ladder(noise=0.005)
    # The file's own names, mapped with --columns like any other column.
    t.rename(columns={"params": "N", "task_loss:t": "hs_bpb", "acc:t": "hs_acc"}).to_csv(p, index=False)
    return p


COLUMNS = "params=N,task_loss:t=hs_bpb,acc:t=hs_acc"


@pytest.fixture(scope="module")
def chain_json(evals_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("chain") / "chain.json"
    with pytest.raises(SystemExit) as exc:
        main(["chain", str(evals_csv), "--columns", COLUMNS, "--target", "acc:t", "--via", "task_loss:t",
              "--bootstrap", "30", "--out", str(out), "--json"])
    assert exc.value.code == 0
    return out


def test_chain_then_predict_json(chain_json, capsys):
    out = chain_json
    assert json.loads(out.read_text())["kind"] == "chain"
    code, stdout, err = run(["predict", str(out), "--params", "8e9", "--tokens", "4e11", "--json"], capsys)
    assert code == 0, err
    pred = json.loads(stdout)
    assert pred["via"]["column"] == "task_loss:t" and pred["target"]["column"] == "acc:t"
    for part in ("via", "target", "baseline"):
        lo, hi = pred[part]["interval"]
        assert lo <= pred[part]["value"] <= hi
    code, stdout, _ = run(["predict", str(out), "--params", "8e9", "--tokens", "4e11"], capsys)
    assert code == 0 and "acc:t" in stdout and "task_loss:t" in stdout


def test_fit_any_target_with_a_link(evals_csv, tmp_path, capsys):
    out = tmp_path / "link.json"
    code, _, err = run(["fit", str(evals_csv), "--columns", COLUMNS, "--law", "sigmoid", "--target", "acc:t",
                        "--x", "task_loss:t", "--out", str(out)], capsys)
    assert code == 0, err
    fit = json.loads(out.read_text())
    assert fit["target"] == "acc:t" and fit["x"] == "task_loss:t" and fit["params"]["L0"] == pytest.approx(1.0, abs=0.1)
    code, stdout, _ = run(["predict", str(out), "--x", "1.0", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["target"] == "acc:t"


@pytest.mark.parametrize(("argv", "message"), [
    (["--target", "acc:t", "--via", "acc:t"], "also the --target"),
    (["--target", "acc:none", "--via", "task_loss:t"], "missing column 'acc:none'"),
    (["--target", "acc:t", "--via", "task_loss:t", "--link", "chinchilla"], "not a law of one input"),
], ids=["via-is-target", "missing-target", "link-of-two-inputs"])
def test_chain_bad_options_exit_2(evals_csv, argv, message, capsys):
    code, _, err = run(["chain", str(evals_csv), "--columns", COLUMNS, *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_constant_target_column_exits_2(tmp_path, capsys):
    p = tmp_path / "flat.csv"
    ladder().assign(**{"acc:t": 0.25}).to_csv(p, index=False)
    code, _, err = run(["fit", str(p), "--law", "sigmoid", "--target", "acc:t", "--x", "task_loss:t"], capsys)
    assert code == 2 and "'acc:t' is constant" in err and len(err.strip().splitlines()) == 1


def test_non_numeric_metric_names_its_row(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    t = ladder().astype({"acc:t": object})
    t.loc[3, "acc:t"] = "high"
    t.to_csv(p, index=False)
    code, _, err = run(["fit", str(p), "--law", "sigmoid", "--target", "acc:t", "--x", "task_loss:t"], capsys)
    assert code == 2 and "row 4, field 'acc:t': 'high' is not a number" in err


def test_link_with_too_few_points_exits_2(tmp_path, capsys):
    p = tmp_path / "few.csv"
    ladder(checkpoints=1).iloc[:3].to_csv(p, index=False)
    code, _, err = run(["chain", str(p), "--target", "acc:t", "--via", "task_loss:t"], capsys)
    assert code == 2 and "3 checkpoints to fit but 4 parameters" in err and len(err.strip().splitlines()) == 1


def test_tampered_chain_json_exits_2(chain_json, tmp_path, capsys):
    out = tmp_path / "chain.json"
    data = json.loads(chain_json.read_text())
    data["step2"]["theta"] = [1.0]
    out.write_text(json.dumps(data))
    code, _, err = run(["predict", str(out), "--params", "8e9", "--tokens", "4e11"], capsys)
    assert code == 2 and "step2.theta: expected 4 numbers" in err


def test_chain_smooth_and_anchor_options(evals_csv, tmp_path, capsys):
    out = tmp_path / "c.json"
    code, _, err = run(["chain", str(evals_csv), "--columns", COLUMNS, "--target", "acc:t", "--via", "task_loss:t",
                        "--smooth", "3", "--anchor", "0,1", "--out", str(out)], capsys)
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["step2"]["n_points"] == 20 * 8 + 1  # every checkpoint (10 % of 8 rounds down to none), plus the anchor
    code, _, err = run(["chain", str(evals_csv), "--columns", COLUMNS, "--target", "acc:t", "--via", "task_loss:t",
                        "--anchor", "zero"], capsys)
    assert code == 2 and "--anchor: 'zero' is not of the form VIA,TARGET" in err


def test_per_step_export_artefacts(evals_csv, tmp_path, capsys):
    """A per-step export starts each run with the untrained model (step 0, D = 0: left out and counted) and may
    hold an evaluation without a step (OLMo's annealed 7B): kept, placed by its tokens like any evaluation."""
    import pandas as pd

    t = pd.read_csv(evals_csv)
    t["step"] = t.groupby("run").cumcount() + 1
    first = t.groupby("run").head(1).assign(step=0, tokens=0.0)
    t = pd.concat([first, t], ignore_index=True).astype({"step": object})
    t.loc[len(first) + 5, "step"] = ""  # an empty cell, as the export writes it
    p = tmp_path / "per_step.csv"
    t.to_csv(p, index=False)
    out = tmp_path / "c.json"
    code, stdout, err = run(["chain", str(p), "--columns", COLUMNS, "--target", "acc:t", "--via", "task_loss:t",
                             "--out", str(out)], capsys)
    assert code == 0, err
    assert f"{len(first)} at D = 0 (before training) left out" in stdout
    data = json.loads(out.read_text())
    assert data["untrained_rows"] == len(first) and data["step2"]["n_points"] == len(t) - len(first)


def test_bundled_olmo_per_step_reads_its_stepless_row():
    from scalinglab import data as bundled
    from scalinglab.fitting.chain import drop_untrained
    from scalinglab.runs.io import read_runs

    table = read_runs(bundled.path("olmo_ladder/olmo_ladder_per_step.csv"), "params=N_nonembed,flops=compute_flops")
    anneal = table[table["run"] == "peteish7_eval_anneal"]
    assert len(anneal) == 1 and pd_isna(anneal["step"].iloc[0]) and anneal["tokens"].iloc[0] == pytest.approx(3.945e12, rel=1e-3)
    kept, dropped = drop_untrained(table)
    assert dropped == 2 and (kept["tokens"] > 0).all()  # the 7B and 13B runs' step-0 evaluations


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


@pytest.mark.parametrize(("command", "rows", "flat", "message"), [
    ("fit", 3, False, "3 usable rows, but the law has 4 parameters to fit; need at least 5 rows"),
    ("chain", None, True, "column 'acc:t' is constant (0.25 in all"),
], ids=["link-fewer-points-than-parameters", "chain-constant-target"])
def test_must_fail_cleanly(tmp_path, capsys, command, rows, flat, message):
    from tests.fitting.test_chain import ladder

    t = ladder(checkpoints=1)
    t = t.iloc[:rows] if rows else t
    if flat:
        t = t.assign(**{"acc:t": 0.25})
    p = tmp_path / "t.csv"
    t.to_csv(p, index=False)
    argv = (["fit", str(p), "--law", "sigmoid", "--target", "acc:t", "--x", "task_loss:t"] if command == "fit"
            else ["chain", str(p), "--target", "acc:t", "--via", "task_loss:t"])
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
