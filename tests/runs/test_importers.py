"""Importers: a real W&B export against the table made from it; TensorBoard event files written here."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

from scalinglab import data as bundled
from scalinglab.errors import InputError
from scalinglab.runs.importers.tensorboard import crc32c, masked_crc
from scalinglab.runs.io import read_runs

WANDB_COLUMNS = ("params=190354176,loss=eval/c4_en-validation/CrossEntropyLoss,"
                 "task_loss:hellaswag=eval/downstream_bpb/hellaswag_val_rc_5shot_bpb")


def test_wandb_export_matches_the_table_made_from_it():
    t = read_runs(bundled.path("olmo_ladder/wandb/190M-2xC.csv"), WANDB_COLUMNS)
    ref = pd.read_csv(bundled.path("olmo_ladder/olmo_ladder_per_step.csv"))
    ref = ref[ref.run == "190M-2xC"]
    m = t.merge(ref, on="step")
    assert len(t) == len(ref) == len(m) == 73 and set(t.run) == {"190M-2xC"}
    np.testing.assert_array_equal(m["task_loss:hellaswag"], m["hellaswag_val_5shot__bpb"])
    np.testing.assert_array_equal(m["loss"], m["c4_loss"])
    np.testing.assert_array_equal(m["tokens_x"], m["tokens_y"])  # throughput/total_tokens → tokens
    assert (t.params == 190354176).all() and np.allclose(t.flops, 6 * t.params * t.tokens)


def test_wandb_rows_without_evaluations_are_dropped(tmp_path):
    p = tmp_path / "run-a.csv"
    p.write_text("_step,throughput/total_tokens,eval/loss\n10,1000,\n20,2000,3.5\n30,3000,\n40,4000,3.1\n")
    t = read_runs(p, "params=1e6,loss=eval/loss")
    assert t.step.tolist() == [20, 40] and t.run.unique().tolist() == ["run-a"]
    assert t.attrs["row_numbers"].tolist() == [2, 4]  # rows of the file, for error messages


def test_wandb_missing_mapped_column_is_named(tmp_path):
    p = tmp_path / "run.csv"
    p.write_text("_step,eval/loss\n1,3.0\n")
    with pytest.raises(InputError, match="'eval/nope' which the file does not have"):
        read_runs(p, "loss=eval/nope")


# -- TensorBoard: a minimal writer (TFRecord framing + Event/Summary protobuf), independent of the reader --
def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _event(step: int, tag: str, value: float, tensor: bool = False) -> bytes:
    if tensor:  # tf.summary.scalar style: TensorProto{dtype=DT_FLOAT, float_val=[value]}
        proto = _field(1, 0, _varint(1)) + _field(5, 5, struct.pack("<f", value))
        val = _field(1, 2, tag.encode()) + _field(8, 2, proto)
    else:  # PyTorch SummaryWriter style: simple_value
        val = _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value))
    return _field(1, 1, struct.pack("<d", 1.7e9)) + _field(2, 0, _varint(step)) + _field(5, 2, _field(1, 2, val))


def _record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc(header)) + payload + struct.pack("<I", masked_crc(payload))


def _write(path, events):
    version = _field(1, 1, struct.pack("<d", 1.7e9)) + _field(3, 2, b"brain.Event:2")
    path.write_bytes(_record(version) + b"".join(_record(e) for e in events))


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720, B.4)


def test_tensorboard_scalars_both_encodings(tmp_path):
    f = tmp_path / "events.out.tfevents.1.host"
    _write(f, [_event(100, "eval/loss", 3.25), _event(100, "acc", 0.5, tensor=True),
               _event(200, "eval/loss", 2.75), _event(200, "acc", 0.625, tensor=True)])
    t = read_runs(f, "loss=eval/loss,acc:task=acc,params=2e7,tokens=step")
    assert t.tokens.tolist() == [100, 200] and t.loss.tolist() == [3.25, 2.75]  # the step column, mapped
    assert t["acc:task"].tolist() == [0.5, 0.625] and (t.params == 2e7).all()


def test_tensorboard_log_directory_is_one_run_per_folder(tmp_path):
    for name, loss in (("small", 3.0), ("large", 2.5)):
        (tmp_path / name).mkdir()
        _write(tmp_path / name / "events.out.tfevents.1.x", [_event(10, "loss", loss)])
    t = read_runs(tmp_path, "params=1e7,tokens=step")
    assert dict(zip(t.run, t.loss, strict=True)) == {"small": 3.0, "large": 2.5}


def test_tensorboard_corruption_is_an_error_and_a_torn_tail_is_dropped(tmp_path):
    f = tmp_path / "events.out.tfevents.2.host"
    _write(f, [_event(1, "loss", 3.0), _event(2, "loss", 2.0)])
    blob = f.read_bytes()
    f.write_bytes(blob[:-3])  # killed mid-write: the last record is incomplete
    assert read_runs(f, "params=1e7,tokens=step").loss.tolist() == [3.0]
    bad = bytearray(blob)
    bad[-10] ^= 0xFF
    f.write_bytes(bytes(bad))
    with pytest.raises(InputError, match="checksum mismatch"):
        read_runs(f, "params=1e7,tokens=step")
