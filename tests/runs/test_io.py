"""Run-table readers and validation: every bad input gets one line naming file, row and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.runs.io import read_runs
from scalinglab.runs.schema import parse_column_map, validate

NEEDED = ("params", "tokens", "loss")


def write_csv(tmp_path, text, name="runs.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_jsonl_parquet_agree(tmp_path):
    frame = pd.DataFrame({"params": [1e8, 2e8, 4e8], "tokens": [2e9, 4e9, 8e9], "loss": [3.1, 2.9, 2.7]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "r.parquet")
    tables = [read_runs(tmp_path / f"r.{ext}") for ext in ("csv", "jsonl", "parquet")]
    for t in tables:
        np.testing.assert_allclose(t["flops"], 6 * frame["params"] * frame["tokens"])
        np.testing.assert_allclose(t["loss"], frame["loss"])


def test_column_map_and_derived_tokens(tmp_path):
    p = write_csv(tmp_path, "Model Size,Training FLOP,final\n1e8,1.2e18,3.0\n2e8,4.8e18,2.8\n")
    t = read_runs(p, 'params="Model Size",flops="Training FLOP",loss=final')
    np.testing.assert_allclose(t["tokens"], [2e9, 4e9])
    validate(t, NEEDED, str(p))


def test_parse_column_map_rejects_unknown_name():
    with pytest.raises(InputError, match="'size' is not a canonical column"):
        parse_column_map("size=N")
    assert parse_column_map('params="a, b",loss=L') == {"params": "a, b", "loss": "L"}


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("params,tokens\n1e8,2e9\n", r"runs.csv: missing column 'loss'"),
        ("params,tokens,loss\n1e8,2e9,3.0\nabc,2e9,3.0\n", r"row 2, field 'params': 'abc' is not a number"),
        ("params,tokens,loss\n1e8,2e9,nan\n", r"row 1, field 'loss'"),
        ("params,tokens,loss\n1e8,2e9,inf\n", r"row 1, field 'loss': .* not a finite number"),
        ("params,tokens,loss\n1e8,-2e9,3.0\n", r"row 1, field 'tokens': -2000000000.0 must be > 0"),
        ("params,tokens,loss\n1e8,2e9,0\n", r"row 1, field 'loss': 0.0 must be > 0"),
        ("params,tokens,loss\n1e8,2e9,3.0\n2e8,2e9,2.9\n1e8,2e9,3.0\n", r"rows 1 and 3 are duplicates"),
    ],
    ids=["missing-column", "non-numeric", "nan", "inf", "negative-tokens", "zero-loss", "duplicate-rows"],
)
def test_bad_input_names_row_and_field(tmp_path, text, pattern):
    p = write_csv(tmp_path, text)
    with pytest.raises(InputError, match=pattern):
        validate(read_runs(p), NEEDED, str(p))


def test_too_few_points(tmp_path):
    p = write_csv(tmp_path, "params,tokens,loss\n1e8,2e9,3.0\n2e8,2e9,2.9\n")
    with pytest.raises(InputError, match="2 usable rows, but the law has 5 parameters to fit; need at least 6 rows"):
        validate(read_runs(p), NEEDED, str(p), min_points=6, n_params=5)


@pytest.mark.parametrize(
    "name, content, pattern",
    [
        ("missing.csv", None, "no such file"),
        ("bad.jsonl", '{"params": 1}\n{oops\n', "line 2 is not valid JSON"),
        ("bad.parquet", "not parquet", "cannot read as parquet"),
        ("runs.xlsx", "x", "unknown file type"),
    ],
    ids=["missing-file", "bad-jsonl", "bad-parquet", "unknown-type"],
)
def test_unreadable_files(tmp_path, name, content, pattern):
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(InputError, match=pattern):
        read_runs(p)


def test_jsonl_row_numbers_are_file_lines(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"params": 1e8, "tokens": 2e9, "loss": 3}\n\n{"params": 1e8, "tokens": 2e9, "loss": -1}\n')
    with pytest.raises(InputError, match="row 3, field 'loss'"):
        validate(read_runs(p), NEEDED, str(p))


def test_bundled_gemstones_aliases(gemstones_path):
    t = read_runs(gemstones_path)
    assert len(t) == 199
    assert {"params", "tokens", "loss", "flops", "run"} <= set(t.columns)
