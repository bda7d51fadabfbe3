"""The exponential as a (mantissa, exponent) pair, for the softmax kernels.

Two-pass softmax (Dukhan & Ablavatski 2020, "The Two-Pass Softmax Algorithm", Sec. 3) never forms
e^x itself: it writes

    e^x = m · 2^n,   n = rint(x · log2 e),   m = e^(x − n·ln 2) ∈ [0.70, 1.42],

so m cannot overflow or underflow whatever x is, and all the dynamic range lives in the integer n
(kept in a float register, as in the paper). Powers of two are built from exponent bits
(``(k + bias) << mantissa_bits``), never by calling ``exp``.

Everything here is a numba building block, inlined into the kernels of ``softmax_kernels.py``:

* ``fma(a, b, c)``, ``max_unordered``, ``add_reassoc``: single LLVM operations with the
  rounding and fast-math flags the kernels need, one instruction each on x86-64.
* ``exp_reduce(x)``: (r, n, t) with x = n·ln 2 + r; one fma rounds x·log2 e + MAGIC (1.5·2^23 for
  float32) to an integer, so t carries n in its low mantissa bits and n = t − MAGIC exactly.
* ``exp_poly(r, scale)``: scale·e^r by a polynomial whose coefficients are pre-multiplied by scale
  (pass 2 folds 1/Σ into them: no multiply per element).
* ``pow2_offset(t, k0)``: 2^(n + k0) straight from t's bits (integer add, max, shift; 0 below the
  normal range), so a term m·2^(n − n_ref) costs one multiply on top of the polynomial.
* ``pow2(k)``: 2^k for an integer-valued float k (the (m, n) merges); ``exp_parts(x)``: (m, n).

Per element, two-pass pass 1 is then 9 multiply-adds (1 for n, 2 for r, 5 for the polynomial, 1 to
accumulate), one max and 3 integer operations on the zmm registers.

Range: inputs are clamped to ±SAFE_X (= 2^16) before the reduction, so ``x·log2 e`` is exact enough
that |x − n·ln 2| ≤ R_MAX and the polynomial below is accurate. Rows whose maximum lies outside
(−SAFE_X + margin, SAFE_X) are detected by their exponent and recomputed by the kernels' max-subtracting
fallback, which is exact at any magnitude (−1e30…+1e30).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic, overload

SAFE_X = 65536.0  # |x| above this takes the fallback path (n stays < 2^17, r stays ≤ R_MAX)
# n of a clamped input: rows whose largest n reaches N_HI, or stays below N_LO + margin, are fallback rows.
N_HI = float(round(SAFE_X * math.log2(math.e)))
N_LO = -N_HI
N_FLOOR = -4.0 * N_HI  # initial exponent of an empty accumulator: below every real n
N_MARGIN = 2100.0  # > 1075: 2^(n − n_max) is exactly 0 for float64 once clamped inputs are this far below
R_MAX = 0.36  # |x − n·ln 2| ≤ ln2·(1/2 + ulp(2^17)/2) < 0.36

# Cody–Waite split of ln 2: the high part is ln 2 rounded to the working precision; with fma the
# reduction x − n·ln2_hi − n·ln2_lo is accurate to a few ulp of r for every |n| < 2^17.
LN2 = math.log(2.0)
LN2_HI_32 = float(np.float32(LN2))
LN2_LO_32 = float(np.float32(LN2 - LN2_HI_32))
LN2_HI_64 = LN2
LN2_LO_64 = float(np.float64(2.3190468138462996e-17))  # ln 2 − fl64(ln 2)
LOG2E = 1.0 / LN2

# e^r on [−R_MAX, R_MAX]. float32: degree 5, 1 + r·q(r) with q minimax in relative error (iteratively
# reweighted least squares on 8,000 Chebyshev nodes): 1.15e-7 with these coefficients exact, 1.8e-7 once
# rounded to float32 and evaluated by float32 Horner with fma (tests/kernels/test_softmax_exp.py checks
# it). The constant term is exactly 1, so e^0 = 1 exactly: online softmax multiplies its running sum by
# e^(c − c) at almost every step, and a constant of 1 + 1 ulp would compound into a 1e-4 bias over a
# row. Degree 5, not the 6 a 2e-8 fit needs: each multiply-add saved is ~10 % of two-pass pass 1, and
# the softmax budget (2e-6 relative) has room for 1.8e-7 in each pass. float64: Taylor to degree 13
# (truncation r^14/14! < 1e-17 on the interval).
EXP_POLY_32 = (
    1.0,
    0.9999996325212954,
    0.4999901104035178,
    0.1666779465334053,
    0.04191610992259923,
    0.008286953258576433,
)
EXP_POLY_64 = tuple(1.0 / math.factorial(k) for k in range(14))


def _llvm_float(ty):
    return ir.FloatType() if ty == types.float32 else ir.DoubleType()


@intrinsic
def fma(typingctx, a, b, c):
    """a·b + c with one rounding (llvm.fma): the Cody–Waite reduction depends on it."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        fty = _llvm_float(sig.return_type)
        fn = builder.module.declare_intrinsic("llvm.fma", [fty], ir.FunctionType(fty, [fty, fty, fty]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def max_unordered(typingctx, a, b):
    """max(a, b) for a reduction whose result may be anything once a NaN was seen (llvm.maxnum flagged
    'nnan'): one vmaxps per vector, where unflagged llvm.maxnum costs a NaN test, a blend and an early
    exit besides. For callers whose NaN inputs poison the result another way (two-pass pass 1's sum)."""
    if not (a == b and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        fty = _llvm_float(sig.return_type)
        fn = builder.module.declare_intrinsic("llvm.maxnum", [fty], ir.FunctionType(fty, [fty, fty]))
        return builder.call(fn, args, fastmath=("nnan",))

    return a(a, b), codegen


@intrinsic
def add_reassoc(typingctx, a, b):
    """a + b flagged 'reassoc' on this one add: a running sum of it may be split over vector lanes
    (which the kernels want) without letting LLVM reorder any other arithmetic."""
    if not (a == b and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "nsz", "contract"))

    return a(a, b), codegen


@intrinsic
def pow2(typingctx, k):
    """2^k for an integer-valued float k ≤ max exponent, from the exponent bits, in three instructions.

    ``t = max(k, −bias) + (1.5·2^p + bias)`` puts k + bias in the low mantissa bits of t (the
    "magic number" trick), and ``bitcast(bits(t) << p)`` moves them into the exponent field while the
    high bits fall off the word. k below the smallest normal exponent (or NaN) gives exactly 0.0.
    """
    if k == types.float32:
        bits, bias, shift = 32, 127, 23
    elif k == types.float64:
        bits, bias, shift = 64, 1023, 52
    else:
        return None
    magic = 1.5 * 2.0**shift + bias

    def codegen(context, builder, sig, args):
        (kv,) = args
        ity = ir.IntType(bits)
        lowest = ir.Constant(kv.type, float(-bias))
        below = builder.fcmp_unordered("<", kv, lowest)  # true for NaN too
        kc = builder.select(below, lowest, kv)
        t = builder.fadd(kc, ir.Constant(kv.type, magic))
        expo = builder.shl(builder.bitcast(t, ity), ir.Constant(ity, shift))
        return builder.bitcast(expo, kv.type)

    return k(k), codegen


def exp_reduce(x):  # pragma: no cover - numba only
    """(r, n, t): x = n·ln 2 + r with n = rint(x·log2 e) and |r| ≤ R_MAX, and t = n + MAGIC (see below)."""
    raise NotImplementedError("exp_reduce is only callable from numba-compiled code")


def exp_poly(r, scale):  # pragma: no cover - numba only
    """scale·e^r for |r| ≤ R_MAX: the polynomial with every coefficient multiplied by ``scale``."""
    raise NotImplementedError("exp_poly is only callable from numba-compiled code")


def exp_scaled(x, scale, k0):  # pragma: no cover - numba only
    """scale·e^x·2^k0 (k0 an integer-valued float, scale and k0 loop-invariant in the kernels): the one
    form every kernel needs, exp_reduce → exp_poly → pow2_offset; 0 once it falls below the normal range."""
    raise NotImplementedError("exp_scaled is only callable from numba-compiled code")


def exp_parts(x):  # pragma: no cover - numba only
    """(m, n) with e^x = m·2^n, m ∈ [0.70, 1.42]."""
    raise NotImplementedError("exp_parts is only callable from numba-compiled code")


def scaled_diff(x, n):  # pragma: no cover - numba only
    """x − n·ln 2 to a few ulp (Cody–Waite with fma); x and n of one float type."""
    raise NotImplementedError("scaled_diff is only callable from numba-compiled code")


def _float_params(ty):
    """(numpy dtype, integer width, exponent bias, mantissa bits) of a numba float type, or None."""
    if ty == types.float32:
        return np.float32, 32, 127, 23
    if ty == types.float64:
        return np.float64, 64, 1023, 52
    return None


@overload(scaled_diff)
def _scaled_diff_impl(x, n):
    if x == types.float32:
        hi, lo = np.float32(LN2_HI_32), np.float32(LN2_LO_32)
    elif x == types.float64:
        hi, lo = np.float64(LN2_HI_64), np.float64(LN2_LO_64)
    else:
        return None

    def impl(x, n):
        return fma(-n, lo, fma(-n, hi, x))

    return impl


@overload(exp_reduce)
def _exp_reduce_impl(x):
    params = _float_params(x)
    if params is None:
        return None
    dt, _, _, mant = params
    safe, log2e, magic = dt(SAFE_X), dt(LOG2E), dt(1.5 * 2.0**mant)

    def impl(x):
        # Clamp below only: −inf and huge negatives become −SAFE_X (their share is then exactly 0 in
        # every fast-path row); NaN passes through the select and poisons r. Above SAFE_X, n ≥ N_HI
        # sends the row to the exact fallback, whatever r is (so no second clamp is needed).
        xc = -safe if x < -safe else x
        # One fma rounds x·log2e + MAGIC to an integer (the spacing of floats at MAGIC is 1): t holds
        # rint(x·log2e) in its low mantissa bits, and t − MAGIC is that integer exactly.
        t = fma(xc, log2e, magic)
        n = t - magic
        return scaled_diff(xc, n), n, t

    return impl


@overload(exp_poly)
def _exp_poly_impl(r, scale):
    if r == types.float32:
        dt, poly = np.float32, EXP_POLY_32
    elif r == types.float64:
        dt, poly = np.float64, EXP_POLY_64
    else:
        return None
    coeffs = tuple(dt(c) for c in poly)
    top = coeffs[-1]
    rest = coeffs[-2::-1]  # Horner order, highest first

    def impl(r, scale):
        # The products c·scale do not depend on r: in a loop with a fixed scale LLVM computes them
        # once, so a per-row factor (1/Σ in pass 2) costs nothing per element.
        p = top * scale
        for c in rest:
            p = fma(p, r, c * scale)
        return p

    return impl


@overload(exp_parts)
def _exp_parts_impl(x):
    if _float_params(x) is None:
        return None
    one = _float_params(x)[0](1.0)

    def impl(x):
        r, n, _ = exp_reduce(x)
        return exp_poly(r, one), n

    return impl


@overload(exp_scaled)
def _exp_scaled_impl(x, scale, k0):
    if _float_params(x) is None or scale != x or k0 != x:
        return None

    def impl(x, scale, k0):
        r, _, t = exp_reduce(x)
        return exp_poly(r, scale) * pow2_offset(t, k0)

    return impl


@intrinsic
def pow2_offset(typingctx, t, k0):
    """2^(n + k0) for t = n + MAGIC from :func:`exp_reduce` and an integer-valued float k0, with
    n + k0 ≤ bias; exactly 0 below the smallest normal exponent.

    No float arithmetic per element: the integer n sits in t's low mantissa bits, so
    ``bits(t) + (bias + k0 − bits(MAGIC))`` is the biased exponent n + k0 + bias, clamped at 0 and
    shifted into place (an integer add, max and shift; k0's conversion is loop-invariant).
    """
    params = _float_params(t)
    if params is None or k0 != t:
        return None
    dt, bits, bias, shift = params
    magic_bits = int(np.array(1.5 * 2.0**shift, dt).view(np.int32 if bits == 32 else np.int64))

    def codegen(context, builder, sig, args):
        tv, kv = args
        ity = ir.IntType(bits)
        offset = builder.add(builder.fptosi(kv, ity), ir.Constant(ity, bias - magic_bits))
        e = builder.add(builder.bitcast(tv, ity), offset)
        zero = ir.Constant(ity, 0)
        e = builder.select(builder.icmp_signed("<", e, zero), zero, e)
        return builder.bitcast(builder.shl(e, ir.Constant(ity, shift)), tv.type)

    return t(t, k0), codegen


def cast_like(value, arr):  # pragma: no cover - numba only
    """``value`` converted to the float type of ``arr`` — an array's element type, or a float scalar's
    own type (keeps float32 kernels in float32)."""
    raise NotImplementedError("cast_like is only callable from numba-compiled code")


@overload(cast_like)
def _cast_like_impl(value, arr):
    params = _float_params(arr.dtype if isinstance(arr, types.Array) else arr)
    if params is None:
        return None
    to_dtype = params[0]

    def impl(value, arr):
        return to_dtype(value)

    return impl
