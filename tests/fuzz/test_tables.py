"""Run tables (CSV, JSONL, JSON, Parquet, run store) through `scalinglab approaches`: refused in one line, or read right.

Every class is one (format, field, kind of bad value) or one broken structure; a property test then puts
arbitrary cell values into a valid table and checks the result against an independent parse.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalinglab.runs.io import read_runs

from .conftest import GRID
from .harness import assert_refused, run_cli

FIELDS = ("params", "tokens", "loss")
ROW = 3  # 1-based data row that gets the bad value

# id → (CSV cell text, JSON value, words the one-line error must contain)
BAD_CELLS = {
    "n/a": ("n/a", "n/a", "'n/a' is not a number"),
    "NA": ("NA", "NA", "'NA' is not a number"),
    "nan": ("nan", "nan", "not a finite number"),
    "inf": ("inf", "inf", "not a finite number"),
    "-inf": ("-inf", "-inf", "not a finite number"),
    "empty": ("", None, "is empty"),
    "blank": ("   ", "   ", "is empty"),
    "true": ("True", True, "boolean"),
    "false": ("false", False, "boolean"),
    "text": ("abc", "abc", "'abc' is not a number"),
    "401-digit-integer": ("1" + "0" * 400, 10**400, "too large"),
    "1e400": ("1e400", "1e400", "too large"),
    "zero": ("0", 0, "must be > 0"),
    "negative": ("-1", -1, "must be > 0"),
    "tiny-negative": ("-1e-300", -1e-300, "must be > 0"),
    "date": ("2024-01-01", "2024-01-01", "not a number"),
    "duration": ("1 days", "1 days", "not a number"),
    "percent": ("5%", "5%", "not a number"),
    "unicode-minus": ("\u22121", "\u22121", "not a number"),
    "rich-markup": ("[red]x[/]", "[red]x[/]", "'[red]x[/]' is not a number"),
}
JSON_ONLY = {
    "list": ([1, 2], "not a number"),
    "object": ({"v": 1}, "not a number"),
    "json-nan": (float("nan"), "NaN"),
    "json-inf": (float("inf"), "not a finite number"),
    "json-huge-float": (1e308 * 10, "not a finite number"),
}
PARQUET = {  # kind → words the error must contain; the column is made by _parquet_column
    "bool": "boolean", "timedelta": "duration", "datetime": "date", "string": "'n/a' is not a number",
    "null": "empty", "inf": "not a finite number",
}


def _parquet_column(col: pd.Series, kind: str) -> pd.Series:
    values = col.to_numpy()
    if kind == "bool":
        return pd.Series(values > 0)
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(values % 1e9, unit="s"))
    if kind == "datetime":
        return pd.Series(pd.to_datetime(values % 1e9, unit="s"))
    out = col.astype(object if kind == "null" else str if kind == "string" else float).copy()
    out.iloc[ROW - 1] = {"null": None, "string": "n/a", "inf": np.inf}[kind]
    return out


def _csv(path, frame: pd.DataFrame) -> None:
    path.write_text(frame.to_csv(index=False))


def _rows(cell_field: str, value) -> list[dict]:
    rows = [{k: float(v) for k, v in r.items()} for r in GRID.to_dict("records")]
    rows[ROW - 1][cell_field] = value
    return rows


def _write(tmp_path, fmt: str, field: str, csv_text: str | None, json_value) -> str:
    if fmt == "csv":
        frame = GRID.astype(object)
        frame.loc[ROW - 1, field] = csv_text
        p = tmp_path / "runs.csv"
        _csv(p, frame)
    elif fmt == "jsonl":
        p = tmp_path / "runs.jsonl"
        p.write_text("\n".join(json.dumps(r) for r in _rows(field, json_value)) + "\n")
    else:
        p = tmp_path / "runs.json"
        p.write_text(json.dumps(_rows(field, json_value)))
    return str(p)


CELL_CLASSES = [(fmt, field, kind) for fmt in ("csv", "jsonl", "json") for field in FIELDS for kind in BAD_CELLS]
CELL_CLASSES += [(fmt, field, kind) for fmt in ("jsonl", "json") for field in FIELDS for kind in JSON_ONLY]
PARQUET_CLASSES = [(field, kind) for field in FIELDS for kind in PARQUET]


@pytest.mark.parametrize(("fmt", "field", "kind"), CELL_CLASSES, ids=["-".join(c) for c in CELL_CLASSES])
def test_bad_cell_is_refused_naming_row_and_field(tmp_path, fmt, field, kind):
    if kind in BAD_CELLS:
        text, value, needle = BAD_CELLS[kind]
    else:
        (value, needle), text = JSON_ONLY[kind], None
    path = _write(tmp_path, fmt, field, text, value)
    assert_refused(run_cli(["approaches", path]), f"row {ROW}", f"'{field}'", needle)


@pytest.mark.parametrize(("field", "kind"), PARQUET_CLASSES, ids=["-".join(c) for c in PARQUET_CLASSES])
def test_bad_parquet_column_is_refused(tmp_path, field, kind):
    frame = GRID.copy()
    frame[field] = _parquet_column(GRID[field], kind)
    needle = PARQUET[kind]
    p = tmp_path / "runs.parquet"
    frame.to_parquet(p)
    assert_refused(run_cli(["approaches", p]), f"'{field}'", needle)


def _header(tmp_path, header: str, body_cols: int = 3, name: str = "runs.csv") -> str:
    p = tmp_path / name
    lines = [header] + [",".join(str(v) for v in list(r)[:body_cols] + [r[0]] * (body_cols - 3))
                        for r in GRID.itertuples(index=False)]
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _raw(tmp_path, name: str, data: bytes | str) -> str:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


STRUCTURE = {
    "repeated-header": (lambda t: _header(t, "params,tokens,params", 3), "appears more than once"),
    "params-and-N": (lambda t: _header(t, "params,tokens,loss,N", 4), "both give 'params'"),
    "loss-and-val_loss": (lambda t: _header(t, "val_loss,tokens,loss,params", 4), "both give 'loss'"),
    "tokens-and-D": (lambda t: _header(t, "params,D,loss,tokens", 4), "both give 'tokens'"),
    "Params-and-params": (lambda t: _header(t, "Params,tokens,loss,params", 4), "both give 'params'"),
    "missing-loss": (lambda t: _header(t, "params,tokens,other", 3), "missing column 'loss'"),
    "empty-file": (lambda t: _raw(t, "runs.csv", ""), "cannot read"),
    "header-only": (lambda t: _raw(t, "runs.csv", "params,tokens,loss\n"), "no rows"),
    "ragged-row": (lambda t: _raw(t, "runs.csv", "params,tokens,loss\n1,2,3\n1,2,3,4,5\n"), "cannot read"),
    "binary": (lambda t: _raw(t, "runs.csv", bytes(range(256)) * 4), "runs.csv"),
    "latin-1": (lambda t: _raw(t, "runs.csv", "params,tokens,loss,run\n1e8,1e9,3,caf\xe9\n".encode("latin-1")),
                "not a text file"),
    "unknown-suffix": (lambda t: _raw(t, "runs.xlsx", "x"), "unknown file type"),
    "no-suffix": (lambda t: _raw(t, "runs", "params,tokens,loss\n"), "unknown file type"),
    "json-scalar": (lambda t: _raw(t, "runs.json", "3"), "got a JSON int"),
    "json-string": (lambda t: _raw(t, "runs.json", '"x"'), "got a JSON str"),
    "json-array-of-numbers": (lambda t: _raw(t, "runs.json", "[1, 2]"), "not an object"),
    "json-unequal-columns": (lambda t: _raw(t, "runs.json", '{"params": [1, 2], "loss": [1]}'), "equal-length"),
    "json-invalid": (lambda t: _raw(t, "runs.json", "{"), "not valid JSON"),
    "json-deep": (lambda t: _raw(t, "runs.json", "[" * 100000 + "]" * 100000), "runs.json"),
    "jsonl-array-line": (lambda t: _raw(t, "runs.jsonl", "[1, 2]\n"), "line 1 is not a JSON object"),
    "jsonl-invalid-line": (lambda t: _raw(t, "runs.jsonl", '{"params": 1}\n{oops\n'), "line 2 is not valid JSON"),
    "jsonl-latin-1": (lambda t: _raw(t, "runs.jsonl", '{"run": "caf\xe9"}\n'.encode("latin-1")), "runs.jsonl"),
    "parquet-corrupt": (lambda t: _raw(t, "runs.parquet", "not parquet"), "cannot read as parquet"),
    "db-text-file": (lambda t: _raw(t, "runs.db", "hello"), "not a SQLite database"),
    "db-empty-file": (lambda t: _raw(t, "runs.db", b""), "not a SQLite database"),
    "db-other-program": (lambda t: _sqlite_other(t), "runs.db"),
    "directory": (lambda t: str(t), "is a directory"),
    "no-such-file": (lambda t: str(t / "nope.csv"), "no such file"),
    "flops-overflow": (lambda t: _raw(t, "runs.csv", "params,tokens,loss\n1e300,1e9,3\n1e8,1e9,3\n1e8,2e9,2.9\n"
                                      "2e8,1e9,2.9\n2e8,2e9,2.8\n"), "derived 'flops'"),
    "tokens-1e308": (lambda t: _raw(t, "runs.csv", "params,tokens,loss\n1e9,1e308,3\n1e8,1e9,3\n1e8,2e9,2.9\n"
                                    "2e8,1e9,2.9\n2e8,2e9,2.8\n"), "derived 'flops'"),
    "tokens-underflow": (lambda t: _raw(t, "runs.csv", "params,flops,loss\n1e300,1e-300,3\n1e8,1e19,3\n"), "'tokens'"),
    "duplicate-rows": (lambda t: _raw(t, "runs.csv", "params,tokens,loss\n1e8,2e9,3\n2e8,2e9,2.9\n1e8,2e9,3\n"),
                       "duplicates"),
}
COLUMN_MAPS = {
    "no-equals": ("params", "not of the form"),
    "unknown-canonical": ("size=N", "not a canonical column"),
    "empty-source": ("params=", "no source column"),
    "absent-source": ("params=Missing", "does not have"),
    "markup-source": ('params="[bold]x[/]"', "'[bold]x[/]'"),
}


def _store(tmp_path, table: str, column: str, value) -> str:
    """A run store of the grid's runs (all done), then one numeric cell overwritten with ``value``."""
    import sqlite3

    from scalinglab.runs.store import RunStore

    p = tmp_path / "runs.db"
    with RunStore(p) as store:
        for i, (n, d, loss) in enumerate(GRID.itertuples(index=False)):
            run = f"r{i}"
            store.register(run, config={}, params=int(n), params_total=int(n), flops_per_token=6 * n,
                           tokens_target=int(d))
            store.update(run, status="done")
            store.add_metric(run, 1, int(d), 6 * n * d, float(loss))
    db = sqlite3.connect(p)
    db.execute(f'UPDATE {table} SET "{column}" = ? WHERE run = ?', (value, "r2"))
    db.commit()
    db.close()
    return str(p)


STORE_CELLS = {
    # (table, column, value) → words the error must contain (the store names the run, step and column)
    "store-text-loss": (("metrics", "loss", "abc"), "column 'loss' holds 'abc', expected a number"),
    "store-text-params": (("runs", "params", "many"), "column 'params' holds 'many', expected a number"),
    "store-text-tokens": (("metrics", "tokens", "n/a"), "column 'tokens' holds 'n/a', expected a number"),
    "store-blob-flops": (("metrics", "flops", b"\x00\x01"), "expected a number"),
    "store-huge-text-params": (("runs", "params", "1" + "0" * 400), "not a finite number"),  # SQLite stores inf
    "store-text-lr": (("runs", "lr", "fast"), "column 'lr' holds 'fast', expected a number"),
    "store-text-seed": (("runs", "seed", "zero"), "column 'seed' holds 'zero', expected a number"),
}


@pytest.mark.parametrize("case", list(STORE_CELLS), ids=list(STORE_CELLS))
def test_text_in_numeric_store_column_is_refused(tmp_path, case):
    (table, column, value), needle = STORE_CELLS[case]
    assert_refused(run_cli(["approaches", _store(tmp_path, table, column, value)]), needle)


def _sqlite_other(tmp_path) -> str:
    import sqlite3

    p = tmp_path / "runs.db"
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE other (x)")
    db.commit()
    db.close()
    return str(p)


@pytest.mark.parametrize("case", list(STRUCTURE), ids=list(STRUCTURE))
def test_broken_structure_is_refused(tmp_path, case):
    make, needle = STRUCTURE[case]
    out = run_cli(["approaches", make(tmp_path)])
    assert_refused(out, needle)
    assert "Execution failed on sql" not in out.err and "SELECT" not in out.err


@pytest.mark.parametrize("case", list(COLUMN_MAPS), ids=list(COLUMN_MAPS))
def test_bad_column_map_is_refused(tmp_path, case):
    text, needle = COLUMN_MAPS[case]
    p = tmp_path / "runs.csv"
    _csv(p, GRID)
    assert_refused(run_cli(["approaches", p, "--columns", text]), needle)


ACCEPTED_HEADERS = {
    "Params-LOSS": "Params,Tokens,LOSS",
    "spaced-names": " params , tokens , loss ",
    "aliases-any-case": "N,Num_Tokens,Final_Loss",
    "mixed-aliases": "MODEL_SIZE,d,Val_Loss",
}


@pytest.mark.parametrize("case", list(ACCEPTED_HEADERS), ids=list(ACCEPTED_HEADERS))
def test_aliases_are_case_insensitive(tmp_path, case):
    """A correct result: the same table whatever the case of the header."""
    p = _header(tmp_path, ACCEPTED_HEADERS[case])
    out = run_cli(["approaches", p, "--json"])
    assert out.code == 0, out.describe()
    t = read_runs(p)
    np.testing.assert_array_equal(t[["params", "tokens", "loss"]].to_numpy(), GRID.to_numpy())


def _expected(text: str) -> float | None:
    """Independent oracle: the number a cell holds, or None when it must be refused."""
    s = text.strip()
    if not s or s.lower() in ("true", "false"):
        return None
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) and x > 0 else None


CELL_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.text(alphabet=st.characters(blacklist_characters=',"\r\n', blacklist_categories=("Cs", "Zl", "Zp", "Cc")),
            max_size=12),
    st.sampled_from(["n/a", "NaN", "-", "none", "null", "True", "1e309", "1_000", " 7 ", "0x1p3", "+inf"]),
)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=CELL_TEXT, field=st.sampled_from(FIELDS), row=st.integers(1, len(GRID)))
def test_any_cell_is_refused_or_read_exactly(tmp_path_factory, text, field, row):
    """Property: a CSV cell is either refused in one line naming its row and field, or read as exactly its number."""
    frame = GRID.astype(object)
    frame.loc[row - 1, field] = text
    p = tmp_path_factory.mktemp("cell") / "runs.csv"
    _csv(p, frame)
    out = run_cli(["approaches", p, "--json"])
    want = _expected(text)
    if want is None:
        assert_refused(out, f"row {row}", f"'{field}'")
    else:
        assert out.code == 0 or out.refused, out.describe()  # e.g. a value that makes two rows duplicates
        if out.code == 0:
            assert read_runs(p)[field].iloc[row - 1] == want


JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-(10**400), 10**400),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=JSON_VALUE, field=st.sampled_from(FIELDS), row=st.integers(1, len(GRID)))
def test_any_jsonl_value_is_refused_or_read_exactly(tmp_path_factory, value, field, row):
    """Property: a JSONL value is refused unless it is a finite positive number (never a boolean)."""
    rows = [{k: float(v) for k, v in r.items()} for r in GRID.to_dict("records")]
    rows[row - 1][field] = value
    p = tmp_path_factory.mktemp("jsonl") / "runs.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = run_cli(["approaches", p, "--json"])
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    want = _expected(repr(float(value))) if numeric and abs(value) < 1e308 else None
    if want is None:
        assert_refused(out, f"row {row}", f"'{field}'")
    else:
        assert out.code == 0 or out.refused, out.describe()
        if out.code == 0:
            assert read_runs(p)[field].iloc[row - 1] == want


CLASS_COUNT = (len(CELL_CLASSES) + len(PARQUET_CLASSES) + len(STRUCTURE) + len(COLUMN_MAPS) + len(ACCEPTED_HEADERS)
               + len(STORE_CELLS))
