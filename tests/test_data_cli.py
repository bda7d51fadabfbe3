"""`scalinglab data …`: the tour's input files, written where asked; bad options are one-line errors."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from scalinglab import data as bundled
from scalinglab.cli import app, main
from scalinglab.fitting.quant_evals import load_quant_evals


def test_gemstones_is_the_bundled_file(tmp_path):
    res = CliRunner().invoke(app, ["data", "gemstones", "--out", str(tmp_path / "sub")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sub" / "cool_end.jsonl").read_bytes() == bundled.path(bundled.GEMSTONES).read_bytes()


def test_ptq_ladder_is_the_bundled_quantized_evaluations(tmp_path):
    res = CliRunner().invoke(app, ["data", "ptq-ladder", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "ptq_evals.csv")
    assert {"params", "tokens", "bits", "loss", "loss_float"} <= set(t.columns)
    assert (tmp_path / "ptq_evals.csv").read_bytes() == bundled.path(bundled.PTQ_LADDER).read_bytes()


def test_shakespeare_ptq_ladder_spans_dn_8_to_250_and_is_a_valid_ptq_input():
    t = pd.read_csv(bundled.path(bundled.PTQ_LADDER_SHAKESPEARE))
    assert len(t) == 216 and t["run_id"].nunique() == 24
    per_run = t.groupby("run_id").agg(rows=("bits", "size"), floats=("loss_float", "nunique"),
                                      params=("params", "first"), tokens=("tokens", "first"))
    assert (per_run["rows"] == 9).all() and (per_run["floats"] == 1).all()  # 9 configs, one float model
    dn = per_run["tokens"] / per_run["params"]
    assert dn.min() <= 10 and dn.max() >= 200 and (per_run.groupby("params").size() == 6).all()
    for selector in ("rtn:group_size=0", "rtn:group_size=8", "smoothquant"):
        evals = load_quant_evals(bundled.path(bundled.PTQ_LADDER_SHAKESPEARE), method=selector)
        assert len(evals.runs) == 24 and set(evals.all_rows["bits"]) == {4, 6, 8}
        # The documented finding: at 4 bits δ rises with D/N within every size (Spearman ρ ≥ 0.8).
        w4 = evals.all_rows[evals.all_rows["bits"] == 4].assign(
            delta=lambda f: f["loss"] - f["loss_float"], dn=lambda f: f["tokens"] / f["params"])
        for _, size in w4.groupby("params"):
            assert size["delta"].corr(size["dn"], method="spearman") >= 0.8, (selector, size)
    seed1 = load_quant_evals(bundled.path("ptq_ladder/evals_shakespeare_seed1.csv"), method="rtn:group_size=0")
    assert len(seed1.runs) == 6 and set(seed1.runs["run"].str[-2:]) == {"s1"}  # d = 24, 32 × D/N 64, 125, 250


def test_multipowerlaw_is_one_table_of_nine_curves(tmp_path):
    res = CliRunner().invoke(app, ["data", "multipowerlaw", "--out", str(tmp_path), "--model", "400M"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "multipowerlaw_400M.csv")
    assert list(t.columns) == ["run", "step", "lr", "loss"] and t["run"].nunique() == 9
    original = pd.read_csv(bundled.path("multipowerlaw/csv_400/wsdcon_3.csv"))
    pd.testing.assert_frame_equal(t[t.run == "wsdcon_3"].drop(columns="run").reset_index(drop=True), original)


def test_bad_options_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "example-model").mkdir()
    for argv in (["data", "multipowerlaw", "--model", "7"], ["data", "gemstones", "--out", str(tmp_path / "afile")],
                 ["data", "quant-example", "--out", str(tmp_path)], ["data", "ptq-ladder", "--corpus", "wikitext"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, (argv, err)


def test_ptq_ladder_shakespeare_from_the_cli(tmp_path):
    res = CliRunner().invoke(app, ["data", "ptq-ladder", "--corpus", "shakespeare", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ptq_evals_shakespeare.csv").read_bytes() == bundled.path(bundled.PTQ_LADDER_SHAKESPEARE).read_bytes()
