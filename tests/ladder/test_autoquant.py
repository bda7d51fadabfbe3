"""Auto-quantization of ladder runs: spec validation, weight-only loss and bytes against the packed WeightOnlyLinear model, the quant_evals
rows (one per run and precision, on the run's own held-out tokens), resume after a crash or a SIGKILL in
the quantization step, and the exported table."""

import copy
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.ladder.autoquant import QuantSpec, quantize_and_evaluate
from scalinglab.ladder.executors import run_ladder
from scalinglab.ladder.spec import parse_spec
from scalinglab.ladder.status import status_lines
from scalinglab.runs.quant_evals import COLUMNS, read_quant_evals
from scalinglab.runs.store import RunStore, load_run_table

SRC = str(Path(__file__).resolve().parents[2] / "src")
W8 = {"method": "rtn", "bits": 8, "activations": "none", "group_size": 8}
W4G = {"method": "rtn", "bits": 4, "activations": "none", "group_size": 8}
W4 = {"method": "rtn", "bits": 4}


def raw_spec(quantize=None, d_model=16):
    raw = {
        "name": "aq",
        "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
        "model": {"seq_len": 16, "n_head": 2, "n_layer": 1},
        "sizes": [{"d_model": d_model}],
        "tokens": [6000],
        "train": {"batch_size": 8, "n_evals": 2, "eval_seqs": 16, "lr": 1e-2, "precision": "fp32"},
    }
    if quantize is not None:
        raw["quantize"] = quantize
    return raw


# ------------------------------------------------------------------------------------------ spec validation
@pytest.mark.parametrize("entry, message", [
    ("rtn", r"quantize\[0\]: expected a table"),
    ({"method": "gptq", "bits": 4}, r"quantize\[0\]: 'method' = 'gptq'"),
    ({"method": "rtn"}, r"quantize\[0\]: 'bits' is missing"),
    ({"bits": 5}, r"quantize\[0\]: 'bits' = 5"),
    ({"bits": True}, r"quantize\[0\]: 'bits' = True"),
    ({"bits": 4, "activations": 16}, r"quantize\[0\]: 'activations' = 16"),
    ({"bits": 4, "group_size": 1}, r"quantize\[0\]: 'group_size' = 1"),
    ({"bits": 4, "group_size": 2.5}, r"quantize\[0\]: 'group_size' = 2.5"),
    ({"bits": 4, "granularity": "row"}, r"quantize\[0\]: unknown field 'granularity'"),
    ({"method": "smoothquant", "bits": 8}, r"quantize\[0\]: method smoothquant quantizes activations"),
    ({"bits": 8, "activations": 8, "group_size": 8}, r"quantize\[0\]: 'group_size' applies to weight-only"),
    ({"method": "llm.int8", "bits": 4, "activations": 8}, r"quantize\[0\]: llm.int8 is defined for 8-bit"),
    ({"bits": 4, "group_size": 6}, r"quantize\[0\]: 'group_size' = 6 does not divide the input width 16"),
], ids=["not-a-table", "unknown-method", "no-bits", "bits-5", "bits-bool", "activations-16", "group-1",
        "group-fraction", "unknown-field", "smoothquant-weight-only", "group-with-activations", "llm.int8-w4",
        "group-not-dividing"])
def test_spec_quantize_errors_name_the_field(entry, message):
    with pytest.raises(InputError, match=message) as err:
        parse_spec(raw_spec([entry]), "s.yaml")
    assert str(err.value).startswith("s.yaml: quantize[0]") and "\n" not in str(err.value)


def test_spec_quantize_list_parses_and_rejects_repeats():
    spec = parse_spec(raw_spec([W8, {"bits": 4, "activations": None, "group_size": 64},
                                {"method": "smoothquant", "bits": 4, "activations": 8}]))
    assert [q.key for q in spec.quantize] == [("rtn", 8, "none", 8), ("rtn", 4, "none", 64),
                                               ("smoothquant", 4, "8", 0)]
    assert spec.quantize[1].label == "rtn W4A16 g64"  # a group wider than every layer: one scale per row
    with pytest.raises(InputError, match=r"quantize\[1\]: repeats entry 0 \(rtn W8A16 g8\)"):
        parse_spec(raw_spec([W8, dict(W8)]))
    with pytest.raises(InputError, match="quantize: expected a non-empty list"):
        parse_spec(raw_spec([]))


# ------------------------------------------------------------------------------------------ the quantizer
@pytest.mark.parametrize("raw", [W8, W4G, W4], ids=["w8-g8", "w4-g8", "w4-row"])
def test_weight_only_loss_and_bytes_match_the_packed_model(raw):
    from scalinglab.ladder.model import GPT, GPTConfig
    from scalinglab.ladder.train import evaluate
    from scalinglab.quant.apply import find_linears
    from scalinglab.quant.evaluate import model_bytes
    from scalinglab.quant.weight_only import WeightOnlyLinear

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, seq_len=16, d_model=16, n_layer=1, n_head=2))
    before = copy.deepcopy(model.state_dict())
    x = torch.randint(0, 16, (8, 17), generator=torch.Generator().manual_seed(1))
    val = [(x[:, :-1], x[:, 1:])]
    spec = QuantSpec.from_raw(raw)
    got = quantize_and_evaluate(model, spec, val)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the float model is untouched
    # Reference: the model with every linear swapped for the packed WeightOnlyLinear (its fused kernel).
    ref, layers = copy.deepcopy(model), 0
    modules = dict(ref.named_modules())
    for name, lin in find_linears(ref).items():
        q = WeightOnlyLinear.from_float(lin.weight, lin.bias, spec.bits, spec.group_size)
        layers += q.weight_bytes() - lin.weight.numel() * 4 - lin.bias.numel() * 4
        parent, _, child = name.rpartition(".")
        setattr(modules[parent], child, q)
    assert abs(got.loss - evaluate(ref, val, "fp32")) < 1e-5
    assert got.weight_bytes == model_bytes(model) + layers  # measured: codes, fp16 steps, zero points
    # Linears q, k, v, o (16 → 16), fc_in (16 → 64), fc_out (64 → 16): codes (half a byte each at 4 bits, a
    # byte at 6 and 8), a float16 step and a uint8 zero point per group, a float32 bias, minus the float weights.
    expected = 0
    for n_out, n_in in [(16, 16)] * 4 + [(64, 16), (16, 64)]:
        groups = n_in // (spec.group_size or n_in)
        expected += n_out * n_in * (0.5 if spec.bits == 4 else 1) + 3 * n_out * groups - 4 * n_out * n_in
    assert layers == expected


# ------------------------------------------------------------------------------------------ ladder + store
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run in a store, no quant rows yet (copied by the tests that change it)."""
    root = tmp_path_factory.mktemp("aq")
    summary = run_ladder(parse_spec(raw_spec()), root / "runs.db", workers=1, threads=1)
    assert len(summary.done) == 1 and not summary.failed
    return root / "runs.db"


def _copy(store: Path, to: Path) -> Path:
    shutil.copy(store, to / "runs.db")  # the model folder stays where the run wrote it (read only)
    return to / "runs.db"


def _rows(path: Path) -> dict:
    with RunStore(path, readonly=True) as s:
        rows = s.db.execute("SELECT method, bits, activations, group_size, loss, created FROM quant_evals").fetchall()
    return {r[:4]: r[4:] for r in rows}


def test_raise_mid_quantization_keeps_rows_and_the_next_run_adds_only_missing(trained, tmp_path, monkeypatch):
    import scalinglab.ladder.autoquant as aq

    store = _copy(trained, tmp_path)
    spec = parse_spec(raw_spec([W8, W4G, W4]))
    real, calls = aq.quantize_and_evaluate, []

    def flaky(model, q, val, calib=()):
        calls.append(q.key)
        if len(calls) == 2:
            raise RuntimeError("killed mid-way")
        return real(model, q, val, calib)

    monkeypatch.setattr(aq, "quantize_and_evaluate", flaky)
    first = run_ladder(spec, store, workers=1, threads=1)
    run = spec.jobs[0].run
    assert "killed mid-way" in first.failed[run] and first.failed[run].startswith("quantization:")
    kept = _rows(store)
    assert list(kept) == [("rtn", 8, "none", 8)]
    with RunStore(store, readonly=True) as s:
        assert s.get(run)["status"] == "done"  # training is never lost to a failed quantization
        n_metrics, claims = len(s.metrics()), s.get(run)["claims"]

    monkeypatch.setattr(aq, "quantize_and_evaluate", real)
    again = run_ladder(spec, store, workers=1, threads=1)
    assert again.quantized == [run] and again.quant_evals == 2 and not again.done and not again.failed
    rows = _rows(store)
    assert set(rows) == {q.key for q in spec.quantize}
    assert rows[("rtn", 8, "none", 8)] == kept[("rtn", 8, "none", 8)]  # the stored row was not recomputed
    with RunStore(store, readonly=True) as s:
        assert len(s.metrics()) == n_metrics and s.get(run)["claims"] == claims  # no retraining
    third = run_ladder(spec, store, workers=1, threads=1)
    assert third.skipped == [run] and third.quant_evals == 0
    assert status_lines(store)[-1] == "quantized evals: 3 (1 runs)"


KILL_SCRIPT = """
import os, signal, sys
import scalinglab.ladder.autoquant as aq
from scalinglab.ladder.executors import run_ladder
from scalinglab.ladder.spec import parse_spec
real, n = aq.quantize_and_evaluate, [0]
def dying(model, q, val, calib=()):
    n[0] += 1
    if n[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(model, q, val, calib)
aq.quantize_and_evaluate = dying
run_ladder(parse_spec({spec!r}), {store!r}, workers=1, threads=1)
"""


def test_sigkill_mid_quantization_resumes(trained, tmp_path):
    store = _copy(trained, tmp_path)
    raw = raw_spec([W8, W4G, W4])
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT.format(spec=raw, store=str(store))],
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert list(_rows(store)) == [("rtn", 8, "none", 8)]
    with RunStore(store) as s:
        assert s.integrity_check() == "ok"
    again = run_ladder(parse_spec(raw), store, workers=1, threads=1)
    assert again.quant_evals == 2 and len(_rows(store)) == 3


def test_quant_rows_use_the_runs_held_out_tokens_and_export(trained, tmp_path):
    store = _copy(trained, tmp_path)
    spec = parse_spec(raw_spec([W8, W4, {"method": "smoothquant", "bits": 8, "activations": 8}]))
    summary = run_ladder(spec, store, workers=1, threads=1)
    assert summary.quant_evals == 3 and not summary.failed
    table, runs = read_quant_evals(store), load_run_table(store)
    assert list(table.columns) == list(COLUMNS) and len(table) == 3
    final = runs.iloc[0]
    assert (table["params"] == final["params"]).all() and (table["tokens"] == final["tokens"]).all()
    # loss_float recomputes the run's final evaluation (fp32 training): the same held-out tokens.
    assert np.allclose(table["loss_float"], final["loss"], atol=1e-5)
    by = table.set_index(["method", "bits", "activations", "group_size"])
    assert abs(by.loc[("rtn", 8, "none", 8), "loss"] - final["loss"]) < 0.01
    assert abs(by.loc[("smoothquant", 8, "8", 0), "loss"] - final["loss"]) < 0.05
    assert by.loc[("rtn", 4, "none", 0), "weight_bytes"] < by.loc[("rtn", 8, "none", 8), "weight_bytes"]
    assert all(math.isfinite(v) for v in table["loss"])


# ------------------------------------------------------------------------------------------ the store table
def test_older_store_gains_the_table_and_a_foreign_one_is_refused(tmp_path):
    import sqlite3

    from scalinglab.runs.store import APPLICATION_ID, NOISE_DDL, SCHEMA

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + NOISE_DDL)  # a store from before quantized evaluations
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.commit()
    db.close()
    assert read_quant_evals(path).empty and list(read_quant_evals(path).columns) == list(COLUMNS)
    with RunStore(path) as s:
        cols = [c[1] for c in s.db.execute("PRAGMA table_info(quant_evals)")]
    assert cols[:5] == ["run_id", "method", "bits", "activations", "group_size"] and "loss_float" in cols

    bad = tmp_path / "bad.db"
    db = sqlite3.connect(bad)
    db.executescript(SCHEMA + NOISE_DDL + "CREATE TABLE quant_evals (run_id TEXT, loss REAL);")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="another program"):
        RunStore(bad)
