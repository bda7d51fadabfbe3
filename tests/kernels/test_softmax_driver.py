"""The row and chunk schedules of the softmax drivers agree with each other and with the serial loop."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.kernels import softmax_driver as drv
from scalinglab.kernels.softmax_api import ALGORITHMS

# log-softmax is computed by the two-pass code only, so it is paired with that algorithm alone.
CASES = [(a, False) for a in ALGORITHMS] + [("two-pass", True)]


@pytest.mark.parametrize(("algorithm", "log"), CASES, ids=[f"{a}-{'log' if lg else 'softmax'}" for a, lg in CASES])
def test_schedules_agree(algorithm, log):
    code = ALGORITHMS[algorithm]
    x = (np.random.default_rng(3).standard_normal((3, 2 * drv.CHUNK + 777)) * 5).astype(np.float32)
    outs = []
    for schedule in (drv._rows_serial, drv._rows_parallel, drv._chunks_parallel, drv._chunks_parallel):
        y = np.empty_like(x)
        if schedule is drv._rows_serial:
            schedule(x, y, code, log)
        else:
            schedule(x, y, code, log, len(outs) == 3)  # the second chunk run asks for streaming stores
        outs.append(y)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-5, atol=1e-12 if not log else 1e-4)
    np.testing.assert_array_equal(outs[3], outs[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 1, 3, 5])
def test_streaming_write_is_bit_identical(dtype, offset):
    """two_pass_write_stream (non-temporal stores) writes exactly what two_pass_write writes, for any
    alignment of the slice and lengths with a head, full tiles and a tail, and leaves the rest alone."""
    from scalinglab.kernels import softmax_kernels as k

    x = (np.random.default_rng(5).standard_normal(5 * 1024 + 37) * 7).astype(dtype)
    x[100] = -np.inf
    m_sum, n_sum = k.two_pass_reduce(x, 0, x.size)
    for lo, hi in ((offset, x.size - offset), (offset, offset + 20), (offset, offset + 1024 + 16)):
        want = np.full_like(x, 7.0)
        got = np.full_like(x, 7.0)
        k.two_pass_write(x, want, lo, hi, n_sum, 1 / m_sum)
        k.two_pass_write_stream(x, got, lo, hi, n_sum, 1 / m_sum)
        np.testing.assert_array_equal(got, want)


def test_streaming_write_in_place():
    """In place the stream kernel falls back to normal stores (same values, no scalar movntss loop)."""
    from scalinglab.kernels import softmax_kernels as k

    x = (np.random.default_rng(7).standard_normal(3 * 1024 + 5) * 3).astype(np.float32)
    m_sum, n_sum = k.two_pass_reduce(x, 0, x.size)
    want = np.empty_like(x)
    k.two_pass_write(x, want, 0, x.size, n_sum, 1 / m_sum)
    k.two_pass_write_stream(x, x, 0, x.size, n_sum, 1 / m_sum)
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_path_of_softmax_2d(monkeypatch, dtype):
    """With a tiny 'L3' every long row takes the streaming path; results equal the normal path bit for bit."""
    x = (np.random.default_rng(6).standard_normal((2, 3 * drv.CHUNK + 11)) * 4).astype(dtype)
    x[1, 5] = np.nan
    want = np.empty_like(x)
    drv._chunks_parallel(x, want, drv.TWO_PASS, False, False)
    monkeypatch.setattr(drv, "l3_bytes", lambda: 1024)
    got = np.empty_like(x)
    drv.softmax_2d(x, got, drv.TWO_PASS, False)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_path_of_rows_schedule(monkeypatch, dtype):
    """Many rows larger than STREAM_MIN_COLS, array 'larger than the L3': the rows schedule streams y,
    bit for bit the normal path's values, fallback and NaN rows included."""
    x = (np.random.default_rng(7).standard_normal((64, drv.STREAM_MIN_COLS + 37)) * 4).astype(dtype)
    x[3, 100] = np.nan
    x[5] = -np.inf
    x[6, 7] = 1e30
    want = np.empty_like(x)
    rows = drv._rows_parallel
    rows(x, want, drv.TWO_PASS, False, False)
    monkeypatch.setattr(drv, "l3_bytes", lambda: 1024)
    calls = []
    monkeypatch.setattr(drv, "_rows_parallel", lambda *a: calls.append(a[-1]) or rows(*a))
    got = np.empty_like(x)
    drv.softmax_2d(x, got, drv.TWO_PASS, False)
    assert calls == [True]
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[3]).all() and np.isnan(got[5]).all() and got[6, 7] == 1



def test_cross_entropy_rows_skips_ignored_targets():
    x = np.random.default_rng(4).standard_normal((5, 100)).astype(np.float32)
    t = np.array([1, -100, 99, 0, 50])
    loss = drv.cross_entropy_rows(x, t, -100)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(1))
    want = lse - x64[np.arange(5), np.where(t < 0, 0, t)]
    want[1] = 0
    np.testing.assert_allclose(loss, want, rtol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("extra", [-1, 0, 1, 5])
@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_two_pass_reduce_across_block_boundaries(dtype, blocks, extra):
    # Pass 1 finds block k+1's max inside block k's sum loop (equal lengths) or apart (the short tail):
    # each block must be scaled by its own max, including a later block far above an earlier one.
    from scalinglab.kernels.softmax_kernels import BLOCK, two_pass_reduce

    size = blocks * BLOCK + extra
    rng = np.random.default_rng(blocks * 10 + extra)
    for lift in (0.0, 300.0, -300.0):
        x = rng.standard_normal(size)
        x[size // 2 :] += lift  # a step inside the row: the later blocks dominate (or vanish)
        x[size - 1] += 5.0  # the tail's own max
        xs = x.astype(dtype)
        m, n = two_pass_reduce(xs, 0, size)
        ref = np.log(np.exp(xs.astype(np.float64) - xs.max()).sum()) + float(xs.max())
        assert np.log(m) + n * np.log(2) == pytest.approx(ref, rel=0, abs=4e-7)
