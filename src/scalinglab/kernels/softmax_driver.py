"""Parallel drivers: run the row kernels of ``softmax_kernels.py`` over a (rows, cols) C-contiguous array.

Two schedules, both over numba's thread pool (``prange``):

* **rows** — each thread takes whole rows and runs every pass of a row back to back, so a row that
  fits in cache is read from memory once. Used when there are enough rows to share.
* **chunks** — for a few very long rows (e.g. one row of 1e7): every pass is split into CHUNK-element
  pieces shared by the threads; pass-1 partials (m, n) of the pieces are merged per row between the
  passes, the same associative merge that joins the lanes. Successive passes run in opposite
  directions (forward, backward, forward): each pass starts on the pieces the previous one touched
  last, which are still in L2/L3, so a row somewhat larger than the L3 is partly re-read from cache
  instead of memory. All four algorithms get this schedule.

Algorithm codes (the public API maps names to them): 0 two-pass, 1 online, 2 three-pass-reload,
3 three-pass-recompute. ``log=True`` (two-pass only) writes log-softmax instead.

Two-pass softmax writes y with non-temporal stores (:func:`two_pass_write_stream`) when a row's x and y
together exceed the L3: y is then written once and never re-read from cache, so skipping the
read-for-ownership of each output line cuts pass 2's memory traffic from three transfers to two.
(Three-pass-reload re-reads y in its last pass, so it keeps normal stores.) The stream path is taken in
the chunk schedule, which is where rows of that size go unless there are ≥ 8 per thread.

Rows the fast path cannot represent (max beyond ±SAFE_X, all −inf, +inf) are recomputed by
:func:`fallback_row`, a max-subtracting pass whose x − max is exact at any magnitude.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from scalinglab.kernels.softmax_exp import cast_like, scaled_diff
from scalinglab.kernels.softmax_kernels import (
    JIT,
    is_fast_row,
    merge,
    online_reduce,
    rescale,
    row_max,
    store_exp_shifted,
    sum_exp_shifted,
    two_pass_reduce,
    two_pass_write,
    two_pass_write_log,
    two_pass_write_stream,
    write_exp_shifted,
)

TWO_PASS, ONLINE, THREE_PASS_RELOAD, THREE_PASS_RECOMPUTE = 0, 1, 2, 3
CHUNK = 1 << 15  # elements per parallel piece of a long row (128 KiB of float32, well inside L2)
PARALLEL_MIN = 1 << 15  # below this many elements in total, one thread beats waking the pool
L3_DEFAULT = 32 << 20  # bytes, when sysfs does not say
STREAM_MIN_COLS = 1024  # rows schedule: streaming stores only for rows of whole lines mostly (≥ 4 KiB)


def cache_sizes() -> dict[str, int]:
    """Data/unified cache sizes in bytes of cpu0 by level name ('L1', 'L2', 'L3'), from sysfs ({} if unknown)."""
    from pathlib import Path

    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = (index / "level").read_text().strip()
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes[f"L{level}"] = int(text.rstrip("KMG")) * scale
    return sizes


@functools.lru_cache(maxsize=1)
def l3_bytes() -> int:
    """Size of cpu0's L3 in bytes (sysfs; L3_DEFAULT if unknown)."""
    return cache_sizes().get("L3", L3_DEFAULT)


@njit(**JIT)
def fallback_row(x, y, lo, hi, log):
    """Exact softmax/log-softmax of x[lo:hi] by max subtraction: NaN for rows with NaN, +inf or all −inf."""
    c = row_max(x, lo, hi)
    s = sum_exp_shifted(x, lo, hi, c)
    if log:
        log_s = math.log(s)
        for i in range(lo, hi):
            y[i] = (x[i] - c) - log_s
    else:
        write_exp_shifted(x, y, lo, hi, c, 1 / s)


@njit(**JIT)
def softmax_row(x, y, lo, hi, algorithm, log, stream=False):
    """All passes of one algorithm over the row x[lo:hi] → y[lo:hi] (``stream``: see _rows_parallel)."""
    if algorithm == TWO_PASS:
        m_sum, n_sum = two_pass_reduce(x, lo, hi)
        if not is_fast_row(n_sum):
            fallback_row(x, y, lo, hi, log)
        elif log:
            two_pass_write_log(x, y, lo, hi, n_sum, math.log(m_sum))
        elif stream:
            two_pass_write_stream(x, y, lo, hi, n_sum, 1 / m_sum)
        else:
            two_pass_write(x, y, lo, hi, n_sum, 1 / m_sum)
    elif algorithm == ONLINE:
        d, c = online_reduce(x, lo, hi)
        if c == np.finfo(x.dtype).min:
            fallback_row(x, y, lo, hi, log)
        else:
            write_exp_shifted(x, y, lo, hi, c, 1 / d)
    elif algorithm == THREE_PASS_RELOAD:
        c = row_max(x, lo, hi)
        s = store_exp_shifted(x, y, lo, hi, c)
        rescale(y, lo, hi, 1 / s)
    else:
        c = row_max(x, lo, hi)
        s = sum_exp_shifted(x, lo, hi, c)
        write_exp_shifted(x, y, lo, hi, c, 1 / s)


@njit(parallel=True, **JIT)
def _rows_parallel(x2, y2, algorithm, log, stream):
    """Whole rows per thread. ``stream``: two-pass softmax writes y with non-temporal stores (the
    array is larger than the L3, so y would be evicted before anyone reads it)."""
    for r in prange(x2.shape[0]):
        softmax_row(x2[r], y2[r], 0, x2.shape[1], algorithm, log, stream)


@njit(**JIT)
def _rows_serial(x2, y2, algorithm, log):
    for r in range(x2.shape[0]):
        softmax_row(x2[r], y2[r], 0, x2.shape[1], algorithm, log)


@njit(parallel=True, **JIT)
def _chunks_parallel(x2, y2, algorithm, log, stream):
    """Every pass split into CHUNK pieces over all rows; partials merged per row between passes.

    ``stream``: two-pass softmax writes with non-temporal stores (rows larger than the L3).
    """
    n_rows, n_cols = x2.shape
    k = (n_cols + CHUNK - 1) // CHUNK
    n_tasks = n_rows * k
    # Partials in float64: two-pass pass 1 returns float64 (m, n); the others store exactly.
    part_a = np.empty((n_rows, k), np.float64)
    part_b = np.empty((n_rows, k), np.float64)
    row_a = np.empty(n_rows, np.float64)
    row_b = np.empty(n_rows, np.float64)
    fast = np.ones(n_rows, np.bool_)

    # Pass 1: (m, n) for two-pass, (d, c) for online, max for the three-pass forms.
    for t in prange(n_tasks):
        r, j = t // k, t % k
        lo, hi = j * CHUNK, min((j + 1) * CHUNK, n_cols)
        if algorithm == TWO_PASS:
            part_a[r, j], part_b[r, j] = two_pass_reduce(x2[r], lo, hi)
        elif algorithm == ONLINE:
            part_a[r, j], part_b[r, j] = online_reduce(x2[r], lo, hi)
        else:
            part_b[r, j] = row_max(x2[r], lo, hi)
    for r in range(n_rows):
        if algorithm == TWO_PASS:
            m_sum, n_sum = part_a[r, 0], part_b[r, 0]
            for j in range(1, k):
                m_sum, n_sum = merge(m_sum, n_sum, part_a[r, j], part_b[r, j])
            row_a[r], row_b[r] = m_sum, n_sum
            fast[r] = is_fast_row(n_sum)
        else:
            c = part_b[r, 0]
            for j in range(1, k):
                c = part_b[r, j] if part_b[r, j] > c or part_b[r, j] != part_b[r, j] else c
            row_b[r] = c
            if algorithm == ONLINE:
                d = part_a[r, 0] * 0
                for j in range(k):
                    d += part_a[r, j] * math.exp(part_b[r, j] - c) if part_a[r, j] != 0 else part_a[r, j]
                row_a[r] = d
                fast[r] = c != np.finfo(x2.dtype).min

    # Pass 2 of the three-pass forms: the sum of e^(x − max) (reload also stores it). Backward.
    three_pass = algorithm == THREE_PASS_RELOAD or algorithm == THREE_PASS_RECOMPUTE
    if three_pass:
        for t in prange(n_tasks):
            tt = np.int64(n_tasks - 1 - t)
            r, j = tt // k, tt % k
            lo, hi = j * CHUNK, min((j + 1) * CHUNK, n_cols)
            if algorithm == THREE_PASS_RELOAD:
                part_a[r, j] = store_exp_shifted(x2[r], y2[r], lo, hi, row_b[r])
            else:
                part_a[r, j] = sum_exp_shifted(x2[r], lo, hi, row_b[r])
        for r in range(n_rows):
            row_a[r] = part_a[r].sum()

    # Last pass: write (or rescale) every piece; backward after one pass, forward after two.
    for t in prange(n_tasks):
        tt = np.int64(t) if three_pass else np.int64(n_tasks - 1 - t)  # one int type (uint64 ∪ int64 → float)
        r, j = tt // k, tt % k
        if not fast[r]:
            continue
        lo, hi = j * CHUNK, min((j + 1) * CHUNK, n_cols)
        if algorithm == TWO_PASS:
            if log:
                two_pass_write_log(x2[r], y2[r], lo, hi, row_b[r], math.log(row_a[r]))
            elif stream:
                two_pass_write_stream(x2[r], y2[r], lo, hi, row_b[r], 1 / row_a[r])
            else:
                two_pass_write(x2[r], y2[r], lo, hi, row_b[r], 1 / row_a[r])
        elif algorithm == THREE_PASS_RELOAD:
            rescale(y2[r], lo, hi, 1 / row_a[r])
        else:
            write_exp_shifted(x2[r], y2[r], lo, hi, row_b[r], 1 / row_a[r])
    for r in range(n_rows):
        if not fast[r]:
            fallback_row(x2[r], y2[r], 0, n_cols, log)


def softmax_2d(x2: np.ndarray, y2: np.ndarray, algorithm: int, log: bool) -> None:
    """Softmax over the last axis of a C-contiguous (rows, cols) float array into y2, choosing a schedule."""
    import numba

    n_rows, n_cols = x2.shape
    if n_rows * n_cols < PARALLEL_MIN:
        _rows_serial(x2, y2, algorithm, log)
        return
    # Dynamic scheduling in small pieces: on a shared machine a descheduled thread then holds up
    # one piece, not half of the work (static halves made 2-thread runs 3× slower under load).
    with numba.parallel_chunksize(1 if n_cols > 2 * CHUNK else max(1, 4096 // n_cols)):
        if n_cols > 2 * CHUNK and n_rows < 8 * _num_threads():
            stream = algorithm == TWO_PASS and not log and 2 * n_cols * x2.itemsize > l3_bytes()
            _chunks_parallel(x2, y2, algorithm, log, stream)
        else:
            stream = (
                algorithm == TWO_PASS and not log and n_cols >= STREAM_MIN_COLS and 2 * x2.nbytes > l3_bytes()
            )
            _rows_parallel(x2, y2, algorithm, log, stream)


@njit(parallel=True, **JIT)
def _cross_entropy_rows(x2, targets, ignore_index, loss):
    """loss_r = logsumexp(x_r) − x_r[t_r] from two-pass pass 1 alone: one read of the logits, no write."""
    n_cols = x2.shape[1]
    for r in prange(x2.shape[0]):
        t = targets[r]
        if t == ignore_index:
            loss[r] = 0
            continue
        x = x2[r]
        m_sum, n_sum = two_pass_reduce(x, 0, n_cols)
        if is_fast_row(n_sum):
            loss[r] = math.log(m_sum) - scaled_diff(x[t], cast_like(n_sum, x))
        else:
            c = row_max(x, 0, n_cols)
            loss[r] = -((x[t] - c) - math.log(sum_exp_shifted(x, 0, n_cols, c)))


def cross_entropy_rows(x2: np.ndarray, targets: np.ndarray, ignore_index: int) -> np.ndarray:
    """Per-row cross-entropy of C-contiguous logits (N, V) against int64 targets (N,) (0 where ignored)."""
    import numba

    loss = np.empty(x2.shape[0], x2.dtype)
    with numba.parallel_chunksize(max(1, 16384 // max(1, x2.shape[1]))):
        _cross_entropy_rows(x2, targets, ignore_index, loss)
    return loss


def _num_threads() -> int:
    import numba

    return numba.get_num_threads()
