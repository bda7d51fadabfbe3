"""TensorBoard event files (``events.out.tfevents.*``): scalars → one row per step, one column per tag.

Read with no TensorFlow: an event file is a sequence of TFRecords, each

    uint64 length | uint32 masked CRC-32C(length) | length bytes | uint32 masked CRC-32C(bytes)

(masked crc = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2^32), and each record is a serialized
``tensorflow.Event`` protobuf: field 2 ``step`` (varint), field 5 ``summary`` (a ``Summary`` message:
repeated field 1 ``value``, each with field 1 ``tag`` and either field 2 ``simple_value`` (float32, as
PyTorch's SummaryWriter writes) or field 8 ``tensor`` (a ``TensorProto`` with a scalar in
``float_val``/``double_val``/``int64_val``/``tensor_content``, as ``tf.summary.scalar`` writes)).
Both CRCs are checked: a truncated or corrupted file is an error naming the file and the byte offset,
except a torn last record (a run killed mid-write), which is dropped.

A directory is read recursively; each folder holding event files is one run named by its path relative
to the directory (``.`` when the files sit at the top). Tags become columns under their own names,
mapped with ``--columns`` (``loss=eval/loss,params=1.2e8``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import InputError
from scalinglab.runs.importers.mapping import apply_map

MASK_DELTA = 0xA282EAD8
EVENT_GLOB = "*tfevents*"


def _crc32c_table() -> np.ndarray:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = [int(v) for v in _crc32c_table()]


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def records(blob: bytes, source: str) -> Iterator[bytes]:
    """The payloads of a TFRecord stream, every CRC checked."""
    pos, n = 0, len(blob)
    while pos < n:
        if n - pos < 12:
            return  # a torn header at the end: the writer was killed mid-record
        header = blob[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc_len,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
        if crc_len != masked_crc(header):
            raise InputError(f"{source}: byte {pos}: bad record header checksum; not a TensorBoard event file")
        end = pos + 12 + length
        if end + 4 > n:
            return  # torn last record
        payload = blob[pos + 12 : end]
        (crc_data,) = struct.unpack("<I", blob[end : end + 4])
        if crc_data != masked_crc(payload):
            raise InputError(f"{source}: byte {pos}: record checksum mismatch (corrupted event file)")
        yield payload
        pos = end + 4


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield number, wire, value


DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64 = 1, 2, 3, 9


def _tensor_scalar(buf: bytes) -> float | None:
    dtype, content, value = DT_FLOAT, b"", None
    for number, wire, v in fields(buf):
        if number == 1 and wire == 0:
            dtype = v
        elif number == 4 and wire == 2:
            content = v
        elif number == 5:  # float_val, packed (wire 2) or not (wire 5)
            value = struct.unpack("<f", v[:4])[0] if len(v) >= 4 else value
        elif number == 6:  # double_val
            value = struct.unpack("<d", v[:8])[0] if len(v) >= 8 else value
        elif number in (7, 10):  # int_val / int64_val, varint (maybe packed)
            value = float(v if wire == 0 else _varint(v, 0)[0])
    if value is None and content:
        fmt = {DT_FLOAT: "<f", DT_DOUBLE: "<d", DT_INT32: "<i", DT_INT64: "<q"}.get(dtype)
        if fmt and len(content) == struct.calcsize(fmt):
            value = struct.unpack(fmt, content)[0]
    return None if value is None else float(value)


def scalars(payload: bytes) -> tuple[int | None, list[tuple[str, float]]]:
    """(step, [(tag, value)]) of one serialized Event; events without a summary give no values."""
    step, out = None, []
    for number, wire, v in fields(payload):
        if number == 2 and wire == 0:
            step = v - (1 << 64) if v >= 1 << 63 else v
        elif number == 5 and wire == 2:
            for n_val, w_val, val in fields(v):
                if n_val != 1 or w_val != 2:
                    continue
                tag, value = None, None
                for n, w, x in fields(val):
                    if n == 1 and w == 2:
                        tag = x.decode("utf-8", errors="replace")
                    elif n == 2 and w == 5:
                        value = struct.unpack("<f", x)[0]
                    elif n == 8 and w == 2:
                        value = _tensor_scalar(x)
                if tag is not None and value is not None:
                    out.append((tag, float(value)))
    return step, out


def read_event_file(path: Path) -> pd.DataFrame:
    """One event file → long frame (step, tag, value)."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    rows = []
    for i, payload in enumerate(records(blob, str(path))):
        try:
            step, values = scalars(payload)
        except (ValueError, struct.error) as exc:
            raise InputError(f"{path}: record {i + 1}: not a TensorBoard event ({exc})") from None
        rows += [(step, tag, value) for tag, value in values]
    return pd.DataFrame(rows, columns=["step", "tag", "value"])


def event_files(path: Path) -> dict[str, list[Path]]:
    """Run name → its event files: a file alone, or every folder under a directory that holds some."""
    if path.is_file():
        return {path.parent.name or ".": [path]}
    runs: dict[str, list[Path]] = {}
    for f in sorted(path.rglob(EVENT_GLOB)):
        if f.is_file():
            runs.setdefault(str(f.parent.relative_to(path)), []).append(f)
    return runs


def is_event_path(path: Path) -> bool:
    return "tfevents" in path.name or (path.is_dir() and any(path.rglob(EVENT_GLOB)))


def read_tensorboard(path: Path, columns: Mapping[str, str]) -> pd.DataFrame:
    """Event file or log directory → wide frame (run, step, one column per tag), ``--columns`` applied."""
    runs = event_files(path)
    if not runs:
        raise InputError(f"{path}: no TensorBoard event files (events.out.tfevents.*) found")
    frames = []
    for run, files in runs.items():
        long = pd.concat([read_event_file(f) for f in files], ignore_index=True)
        if long.empty:
            continue
        long = long.dropna(subset=["step"])
        # The last value written for a (step, tag) wins, as TensorBoard shows it after a restart.
        wide = long.pivot_table(index="step", columns="tag", values="value", aggfunc="last").reset_index()
        wide.columns.name = None
        frames.append(apply_map(wide, {}, columns, str(path), run))
    if not frames:
        raise InputError(f"{path}: the event files hold no scalar values")
    out = pd.concat(frames, ignore_index=True)
    out.attrs["row_numbers"] = np.arange(1, len(out) + 1)
    return out
