"""The exponential as a (mantissa, exponent) pair, for the softmax kernels.

Two-pass softmax (Dukhan & Ablavatski 2020, "The Two-Pass Softmax Algorithm", Sec. 3) never forms
e^x itself: it writes

    e^x = m · 2^n,   n = rint(x · log2 e),   m = e^(x − n·ln 2) ∈ [0.70, 1.42],

so m cannot overflow or underflow whatever x is, and all the dynamic range lives in the integer n
(kept in a float register, as in the paper). Powers of two are built from exponent bits
(``(k + bias) << mantissa_bits``), never by calling ``exp``.

Everything here is a numba building block, inlined into the kernels of ``softmax_kernels.py``:

* ``fma(a, b, c)`` and ``rint(x)``: the LLVM intrinsics (one instruction each on x86-64).
* ``pow2(k)``: 2^k for an integer-valued float k ≤ max exponent; k below the smallest normal
  exponent gives exactly 0 (and NaN gives 0, so a NaN travels through m, not through the scale).
* ``exp_parts(x)``: (m, n) for one element, float32 or float64.

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

# e^r on [−R_MAX, R_MAX]. float32: degree 6, least squares in relative error on Chebyshev nodes
# (max relative error 2.2e-8 after rounding the coefficients to float32). float64: Taylor to degree 13
# (truncation r^14/14! < 1e-17 on the interval).
EXP_POLY_32 = (
    1.000000000801031,
    1.0000000452340125,
    0.49999989322733684,
    0.16666380890326857,
    0.041668634999475436,
    0.008378021606803286,
    0.0013824733195388402,
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
def rint(typingctx, x):
    """Round to nearest integer, ties to even, kept in floating point (llvm.rint → vrndscale)."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        fty = _llvm_float(sig.return_type)
        fn = builder.module.declare_intrinsic("llvm.rint", [fty], ir.FunctionType(fty, [fty]))
        return builder.call(fn, args)

    return x(x), codegen


@intrinsic
def maxnum(typingctx, a, b):
    """max(a, b) ignoring a NaN operand (llvm.maxnum): LLVM vectorises it as a max-reduction."""
    if not (a == b and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        fty = _llvm_float(sig.return_type)
        fn = builder.module.declare_intrinsic("llvm.maxnum", [fty], ir.FunctionType(fty, [fty, fty]))
        return builder.call(fn, args)

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


def exp_parts(x):  # pragma: no cover - replaced by the overload below inside numba
    """(m, n) with e^x = m·2^n; pure-Python signature stub for the numba overload."""
    raise NotImplementedError("exp_parts is only callable from numba-compiled code")


def scaled_diff(x, n):  # pragma: no cover - numba only
    """x − n·ln 2 to a few ulp (Cody–Waite with fma); x and n of one float type."""
    raise NotImplementedError("scaled_diff is only callable from numba-compiled code")


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


@overload(exp_parts)
def _exp_parts_impl(x):
    if x == types.float32:
        dt, poly = np.float32, EXP_POLY_32
    elif x == types.float64:
        dt, poly = np.float64, EXP_POLY_64
    else:
        return None
    safe, log2e = dt(SAFE_X), dt(LOG2E)
    coeffs = tuple(dt(c) for c in poly)
    top = coeffs[-1]
    rest = coeffs[-2::-1]  # Horner order, highest first

    def impl(x):
        # Clamp below only: −inf and huge negatives become −SAFE_X (their share is then exactly 0 in
        # every fast-path row); NaN passes through the select and poisons m. Above SAFE_X, n ≥ N_HI
        # sends the row to the exact fallback, whatever m is (so no second clamp is needed).
        xc = -safe if x < -safe else x
        n = rint(xc * log2e)
        r = scaled_diff(xc, n)
        p = top
        for c in rest:
            p = fma(p, r, c)
        return p, n

    return impl


def cast_like(value, arr):  # pragma: no cover - numba only
    """``value`` converted to the element type of ``arr`` (keeps float32 kernels in float32)."""
    raise NotImplementedError("cast_like is only callable from numba-compiled code")


@overload(cast_like)
def _cast_like_impl(value, arr):
    if not isinstance(arr, types.Array) or arr.dtype not in (types.float32, types.float64):
        return None
    to_dtype = np.float32 if arr.dtype == types.float32 else np.float64

    def impl(value, arr):
        return to_dtype(value)

    return impl
