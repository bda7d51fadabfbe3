"""Row kernels of the softmax family, compiled by numba: one function per pass of each algorithm.

Each function works on a contiguous 1-D slice ``x[lo:hi]`` of a row, so the drivers in
``softmax_driver.py`` can split a row over threads (chunks) or give each thread whole rows.

Algorithms (N elements, counting memory traffic over the row):

* two-pass (Dukhan & Ablavatski 2020, Alg. 3): pass 1 reduces (m_sum, n_sum) with e^x = m·2^n;
  pass 2 writes m_i · 2^(n_i − n_sum) / m_sum. Two reads, one write.
* online (Milakov & Gimelshein 2018, Alg. 3): pass 1 keeps a running max and a rescaled sum of
  e^(x − max); pass 2 writes e^(x − max)/sum. Two reads, one write, two exponentials per element.
* three-pass-recompute: max, then Σe^(x − max), then write e^(x − max)/sum. Three reads, one write.
* three-pass-reload: max, then write e^(x − max) and sum it, then rescale y in place.
  Three reads, two writes.

The max-subtracting pass-1 loops keep LANES independent accumulators (two AVX-512 registers of
float32) so the loop-carried update does not serialise and LLVM vectorises it; lanes are merged once
at the end. Two-pass pass 1 works in L1-sized blocks instead: a plain sum of m_i·2^(n_i − n_blk), n_blk
the exponent of the block's max, which the loop over the previous block found (see
:func:`two_pass_reduce`); blocks are folded in float64.
The (m, n) merge, Dukhan & Ablavatski Eq. (4):

    n_max = max(n_a, n_b);   m = m_a·2^(n_a − n_max) + m_b·2^(n_b − n_max)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scalinglab.kernels.nt_store import LINE_BYTES, address, store_fence, store_nt
from scalinglab.kernels.softmax_exp import (
    N_FLOOR,
    N_HI,
    N_LO,
    N_MARGIN,
    add_reassoc,
    cast_like,
    exp_parts,
    exp_scaled,
    max_unordered,
    pow2,
    scaled_diff,
)

LANES = 32  # independent (m, n) accumulators: 2 × 16 float32 per AVX-512 register pair
BLOCK = 2048  # two-pass pass 1: elements per block (8 KiB of float32: the second loop reads it from L1)
# No 'nnan'/'ninf' (NaN and −inf must keep their IEEE meaning) and no 'reassoc' (it would undo the
# Cody–Waite reduction); 'contract' lets LLVM fuse the remaining multiply-adds.
FASTMATH = {"contract", "arcp", "nsz"}
JIT = {"cache": True, "fastmath": FASTMATH, "nogil": True, "error_model": "numpy"}


@njit(**JIT)
def merge(m_a, n_a, m_b, n_b):
    """Merge two (m, n) partial sums (associative and commutative)."""
    n_max = n_b if n_b > n_a else n_a
    return m_a * pow2(n_a - n_max) + m_b * pow2(n_b - n_max), n_max


@njit(**JIT)
def _block_max(xb):
    """Largest element of a non-empty block (any value once it holds a NaN; the sum then is NaN anyway)."""
    c = xb[0]
    for i in range(xb.size):
        c = max_unordered(c, xb[i])
    return c


@njit(**JIT)
def _block_sum(xb, n_blk):
    """Σ e^x_i · 2^−n_blk over a block whose exponents n_i are all ≤ n_blk (each term ≤ 1.42)."""
    s, one = cast_like(0.0, xb), cast_like(1.0, xb)
    for i in range(xb.size):
        s = add_reassoc(s, exp_scaled(xb[i], one, -n_blk))
    return s


@njit(**JIT)
def _block_sum_next_max(xb, xn, n_blk):
    """(:func:`_block_sum` of xb, :func:`_block_max` of xn) in one loop over two blocks of one length.

    The max rides along in the FP-add pipes while the sum's multiply-adds keep the FMA pipes busy:
    a separate max loop costs ~15 % of pass 1, this one next to nothing.
    """
    s, one = cast_like(0.0, xb), cast_like(1.0, xb)
    c = xn[0]
    for i in range(xb.size):
        s = add_reassoc(s, exp_scaled(xb[i], one, -n_blk))
        c = max_unordered(c, xn[i])
    return s, c


@njit(**JIT)
def two_pass_reduce(x, lo, hi):
    """Pass 1 of two-pass: (m_sum, n_sum) in float64 with Σ e^x_i = m_sum·2^n_sum over x[lo:hi].

    Blocks of BLOCK elements (L1-resident). Block k's terms are summed as m_i·2^(n_i − n_k), n_k the
    exponent of its max (so no term exceeds 1.42 and the plain sum cannot overflow), in the input
    precision with LLVM splitting the sum over several zmm accumulators (a few dozen terms per lane),
    and folded into the float64 (m, n) total with :func:`merge`: ~1e-7 relative accuracy however
    long the row. Block k+1's max is found in the same loop as block k's sum. A NaN is skipped by
    the max and poisons its block's sum.
    """
    xs = x[lo:hi]
    size = xs.size
    m_sum, n_sum = 0.0, N_FLOOR
    if size == 0:
        return m_sum, n_sum
    c = _block_max(xs[: min(BLOCK, size)])
    for start in range(0, size, BLOCK):
        end = min(start + BLOCK, size)
        nxt = min(end + BLOCK, size)
        _, n_blk = exp_parts(c)  # rint and the clamp are monotone: n_blk = max n_i
        if nxt - end == end - start:
            s, c = _block_sum_next_max(xs[start:end], xs[end:nxt], n_blk)
        else:
            s = _block_sum(xs[start:end], n_blk)
            if nxt > end:
                c = _block_max(xs[end:nxt])
        m_sum, n_sum = merge(m_sum, n_sum, np.float64(s), np.float64(n_blk))
    return m_sum, n_sum


@njit(**JIT)
def two_pass_write(x, y, lo, hi, n_sum, inv_m_sum):
    """Pass 2 of two-pass: y_i = m_i · 2^(n_i − n_sum) / m_sum."""
    xs, ys = x[lo:hi], y[lo:hi]
    n_sum, inv_m_sum = cast_like(n_sum, x), cast_like(inv_m_sum, x)
    for i in range(xs.size):
        ys[i] = exp_scaled(xs[i], inv_m_sum, -n_sum)


@njit(**JIT)
def _two_pass_write_nt(xs, ys, n_sum, inv_m_sum):
    """two_pass_write's loop over equal-length slices with non-temporal stores; ys[0] 64-byte aligned."""
    for i in range(xs.size):
        store_nt(ys, i, exp_scaled(xs[i], inv_m_sum, -n_sum))


@njit(**JIT)
def two_pass_write_stream(x, y, lo, hi, n_sum, inv_m_sum):
    """Pass 2 of two-pass with non-temporal stores, for rows larger than the L3: values identical to
    :func:`two_pass_write`, but y's lines are neither read before being written nor kept in cache.

    The elements before y's first 64-byte boundary and after its last whole line use
    :func:`two_pass_write`; the whole lines in between are streamed (same arithmetic, same order).
    """
    xs, ys = x[lo:hi], y[lo:hi]
    size = ys.size
    addr = address(ys)
    x_addr = address(xs)
    overlap = x_addr < addr + size * ys.itemsize and addr < x_addr + size * xs.itemsize
    # In place (or overlapping), LLVM's runtime alias check would send the loop to its scalar
    # version: 4-byte movntss stores, ~100× slower than normal stores. Unaligned: no lines to stream.
    if overlap or addr % ys.itemsize != 0:
        two_pass_write(x, y, lo, hi, n_sum, inv_m_sum)
        return
    width = LINE_BYTES // ys.itemsize
    head = min(size, ((-addr) % LINE_BYTES) // ys.itemsize)
    body = (size - head) // width * width
    two_pass_write(x, y, lo, lo + head, n_sum, inv_m_sum)
    if body > 0:
        mid = lo + head
        _two_pass_write_nt(x[mid : mid + body], y[mid : mid + body], cast_like(n_sum, x), cast_like(inv_m_sum, x))
        store_fence()
    two_pass_write(x, y, lo + head + body, hi, n_sum, inv_m_sum)


@njit(**JIT)
def two_pass_write_log(x, y, lo, hi, n_sum, log_m_sum):
    """log-softmax from pass 1: y_i = (x_i − n_sum·ln 2) − ln m_sum, the difference taken exactly."""
    xs, ys = x[lo:hi], y[lo:hi]
    n_sum, log_m_sum = cast_like(n_sum, x), cast_like(log_m_sum, x)
    for i in range(xs.size):
        ys[i] = scaled_diff(xs[i], n_sum) - log_m_sum


@njit(**JIT)
def is_fast_row(n_sum):
    """A row is exact on the fast path unless its max was clamped (see softmax_exp.SAFE_X)."""
    return n_sum < N_HI and n_sum > N_LO + N_MARGIN


# --------------------------------------------------------------------------- max-subtracting passes


@njit(**JIT)
def row_max(x, lo, hi):
    """max over x[lo:hi] with LANES accumulators; a NaN anywhere is returned (it makes a NaN row)."""
    xs = x[lo:hi]
    acc = np.full(LANES, -np.inf, x.dtype)
    bad = np.zeros(LANES, x.dtype)
    n_full = xs.size - xs.size % LANES
    for base in range(0, n_full, LANES):
        for lane in range(LANES):
            v = xs[base + lane]
            acc[lane] = v if v > acc[lane] else acc[lane]
            bad[lane] += v - v  # 0, or NaN when v is NaN or ±inf
    for j in range(n_full, xs.size):
        v = xs[j]
        acc[0] = v if v > acc[0] else acc[0]
        bad[0] += v - v
    best = acc[0]
    nan_seen = False
    for lane in range(LANES):
        best = acc[lane] if acc[lane] > best else best
        nan_seen = nan_seen or bad[lane] != bad[lane]
    if nan_seen:
        for j in range(xs.size):
            if xs[j] != xs[j]:
                return xs[j]
    return best


@njit(**JIT)
def exp_shifted(x, c):
    """e^(x − c) for x − c ≤ 0 via (m, n); underflows cleanly to 0, −inf gives 0."""
    d = x - c
    return exp_scaled(d, cast_like(1.0, d), cast_like(0.0, d))


@njit(**JIT)
def sum_exp_shifted(x, lo, hi, c):
    """Σ e^(x_i − c) over x[lo:hi] with LANES accumulators (three-pass-recompute, pass 2)."""
    xs, c = x[lo:hi], cast_like(c, x)
    acc = np.zeros(LANES, x.dtype)
    n_full = xs.size - xs.size % LANES
    for base in range(0, n_full, LANES):
        for lane in range(LANES):
            acc[lane] += exp_shifted(xs[base + lane], c)
    for j in range(n_full, xs.size):
        acc[0] += exp_shifted(xs[j], c)
    return acc.sum()


@njit(**JIT)
def store_exp_shifted(x, y, lo, hi, c):
    """y_i = e^(x_i − c), returning Σ y_i (three-pass-reload, pass 2)."""
    xs, ys, c = x[lo:hi], y[lo:hi], cast_like(c, x)
    acc = np.zeros(LANES, x.dtype)
    n_full = xs.size - xs.size % LANES
    for base in range(0, n_full, LANES):
        for lane in range(LANES):
            e = exp_shifted(xs[base + lane], c)
            ys[base + lane] = e
            acc[lane] += e
    for j in range(n_full, xs.size):
        e = exp_shifted(xs[j], c)
        ys[j] = e
        acc[0] += e
    return acc.sum()


@njit(**JIT)
def write_exp_shifted(x, y, lo, hi, c, scale):
    """y_i = e^(x_i − c)·scale (three-pass-recompute pass 3, online pass 2, the fallback)."""
    xs, ys, c, scale = x[lo:hi], y[lo:hi], cast_like(c, x), cast_like(scale, x)
    for i in range(xs.size):
        ys[i] = exp_shifted(xs[i], c) * scale


@njit(**JIT)
def rescale(y, lo, hi, scale):
    """y_i ← y_i·scale (three-pass-reload, pass 3)."""
    ys, scale = y[lo:hi], cast_like(scale, y)
    for i in range(ys.size):
        ys[i] *= scale


@njit(**JIT)
def online_step(d, c, v):
    """One online-softmax update: running max c and d = Σ e^(x − c) after seeing v."""
    c_new = v if v > c else c
    return d * exp_shifted(c, c_new) + exp_shifted(v, c_new), c_new


@njit(**JIT)
def online_reduce(x, lo, hi):
    """Online softmax pass 1: (d, c) with Σ e^(x_i) = d·e^c, c the running max (Milakov & Gimelshein)."""
    xs = x[lo:hi]
    d_acc = np.zeros(LANES, x.dtype)
    # Start the running max at the lowest finite value: −inf entries then never form −inf − (−inf).
    c_acc = np.full(LANES, np.finfo(x.dtype).min, x.dtype)
    n_full = xs.size - xs.size % LANES
    for base in range(0, n_full, LANES):
        for lane in range(LANES):
            d_acc[lane], c_acc[lane] = online_step(d_acc[lane], c_acc[lane], xs[base + lane])
    for j in range(n_full, xs.size):
        d_acc[0], c_acc[0] = online_step(d_acc[0], c_acc[0], xs[j])
    return online_merge(d_acc, c_acc)


@njit(**JIT)
def online_merge(d_parts, c_parts):
    """Merge (d, c) partials: c = max c_k, d = Σ d_k·e^(c_k − c); a NaN partial makes the result NaN."""
    c = c_parts[0]
    for k in range(c_parts.size):
        c = c_parts[k] if c_parts[k] > c else c
    d = d_parts[0] * 0
    for k in range(d_parts.size):
        if d_parts[k] != d_parts[k]:
            return d_parts[k], c
        if d_parts[k] > 0:
            d += d_parts[k] * exp_shifted(c_parts[k], c)
    return d, c
