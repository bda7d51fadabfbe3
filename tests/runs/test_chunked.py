"""Chunked reading equals one-shot reading; errors in late chunks name the global row; linear by structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.runs import schema
from scalinglab.runs.chunked import read_chunked
from scalinglab.runs.io import read_runs

ONE_SHOT = 10**9  # a chunk larger than any test file: the whole file in one piece


def frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "run_id": [f"{i:04d}" for i in range(n)],  # leading zeros: text, not numbers, in every chunk
        "N": rng.choice([1e8, 2e8, 4e8], n), "tokens": rng.choice([1e9, 3e9], n), "loss": 2.5 + rng.random(n),
    })


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet"])
def test_chunked_equals_one_shot(tmp_path, ext):
    path = tmp_path / f"runs.{ext}"
    f = frame()
    if ext == "parquet":
        f.to_parquet(path)
    else:
        f.to_csv(path, index=False, sep="\t" if ext == "tsv" else ",")
    whole = read_chunked(path, {"params": "N"}, chunk_rows=ONE_SHOT)
    parts = read_chunked(path, {"params": "N"}, chunk_rows=97)
    pd.testing.assert_frame_equal(parts, whole)
    np.testing.assert_array_equal(parts.attrs["row_numbers"], np.arange(1, 1001))
    assert parts["run"].tolist()[:2] == ["0000", "0001"]
    np.testing.assert_array_equal(parts["loss"].to_numpy(), f["loss"].to_numpy())


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_error_in_a_late_chunk_names_the_global_row(tmp_path, ext):
    f = frame().astype({"loss": object})
    f.loc[949, "loss"] = "oops"  # data row 950 of the file
    path = tmp_path / f"runs.{ext}"
    if ext == "parquet":
        f.astype({"loss": str}).to_parquet(path)
    else:
        f.to_csv(path, index=False)
    with pytest.raises(InputError, match=rf"runs.{ext}: row 950, field 'loss': 'oops' is not a number"):
        read_runs(path, {"params": "N"}) if ext == "csv" else read_chunked(path, {"params": "N"}, chunk_rows=100)
    with pytest.raises(InputError, match=r"row 950, field 'loss'"):
        read_chunked(path, {"params": "N"}, chunk_rows=100)


def test_header_only_file_has_no_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n")
    with pytest.raises(InputError, match="runs.csv: no rows"):
        read_runs(path)


def test_reading_is_linear_by_structure(tmp_path, monkeypatch):
    """No per-row helper may build a table-sized array: count np.arange calls in the schema module.

    Reading used to call ``np.arange(len(table))`` once per row (to name generated runs), which made a
    read quadratic in rows. Here a file without a ``run`` column (every run name is generated) is read
    in 5 chunks; the schema may build O(1) arrays per chunk, never one per row.
    """
    n = 2000
    path = tmp_path / "runs.csv"
    frame(n).drop(columns="run_id").rename(columns={"N": "params"}).to_csv(path, index=False)
    calls = []
    real = np.arange

    class CountingNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def arange(*args, **kwargs):
            calls.append(args)
            return real(*args, **kwargs)

    monkeypatch.setattr(schema, "np", CountingNumpy())
    monkeypatch.setattr("scalinglab.runs.chunked.CHUNK_ROWS", 400)
    table = read_chunked(path)
    table = schema.derive(table, str(path))
    assert table["run"].iloc[-1] == f"row{n}"
    assert len(calls) <= 2 * 5 + 2, f"{len(calls)} arange calls for {n} rows"
