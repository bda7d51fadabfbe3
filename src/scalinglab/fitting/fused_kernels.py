"""Numba kernels for the Chinchilla fit: the fused Huber objective and a compiled multi-start L-BFGS.

Imported lazily by ``fused.py`` (numba's import and the cache lookup cost ~0.5 s, which a NumPy-only
fit should not pay).

Two costs dominate a full-grid fit. The objective: per point, two powers and one log. Scaling data
come in grids (a few model sizes × a few token budgets), so N^-α and D^-β are computed once per
*distinct* N and D and looked up per point — identical numbers, ~3× fewer transcendentals. Points are
design points (``design.py``): rows sharing (N, D) are evaluated once, their Huber terms summed exactly
from sorted loss offsets and prefix sums. And the
driver: advancing 4,500 starts in lock-step from Python costs ~0.2 ms of NumPy bookkeeping per
iteration and line-search round, more than the arithmetic. Here every start runs the same L-BFGS as
``optimize.lbfgs_batched`` (two-loop recursion, weak Wolfe line search, projection on the box, the same
stopping rules) inside one compiled call. Starts are independent, so running them one after another
gives exactly the iterates the lock-step loop gives; a slice of starts is one call, slices go to
threads (the kernels release the GIL).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from scalinglab.fitting.linesearch import ARMIJO_C1, MAX_BACKTRACKS, WOLFE_C2  # shared with optimize.py

P = 5  # a, b, e, alpha, beta
# Sums may be reordered (so the per-point loop runs in SIMD lanes) and a·b + c fused; no flag that
# assumes finite values, so overflow is still seen and reported.
VECTOR_MATH = {"reassoc", "contract", "nsz"}


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of a float64, as an int64 (a register move)."""
    if x != types.float64:
        return None
    return types.int64(types.float64), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose bits are the int64 ``i``."""
    if i != types.int64:
        return None
    return types.float64(types.int64), lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())


_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bits of √½: mantissas are reduced to [√½, √2)
_LN2_HI = math.log(2.0)
_LN2_LO = 2.3190468138462996e-17  # ln 2 − fl64(ln 2)
_ATANH = tuple(2.0 / (2 * k + 1) for k in range(1, 12))  # log m = 2s + s·Σ 2z^k/(2k+1), z = s²
_TINY, _HUGE = 2.2250738585072014e-308, 1.7976931348623157e308


@njit(inline="always", fastmath=VECTOR_MATH, error_model="numpy")
def vlog(x):
    """ln x for a float64 in SIMD-friendly arithmetic (libm's ``log`` is a call LLVM cannot vectorise).

    x = 2^k·m with m ∈ [√½, √2) from the exponent bits; ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172,
    by its series to z^11 (truncation < 1e-18); k·ln 2 in two parts. Within 3 ulp of ``np.log`` (tested).
    Zero, subnormal, inf and NaN give NaN, which the objective reports as non-finite.
    """
    i = _bits(x)
    k = (i - _SQRT_HALF_BITS) >> 52
    m = _from_bits(i - (k << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    r = _ATANH[10]
    r = r * z + _ATANH[9]
    r = r * z + _ATANH[8]
    r = r * z + _ATANH[7]
    r = r * z + _ATANH[6]
    r = r * z + _ATANH[5]
    r = r * z + _ATANH[4]
    r = r * z + _ATANH[3]
    r = r * z + _ATANH[2]
    r = r * z + _ATANH[1]
    r = (r * z + _ATANH[0]) * z
    kf = np.float64(k)
    out = kf * _LN2_HI + ((s + s) + (s * r + kf * _LN2_LO))
    return out if (x >= _TINY) and (x <= _HUGE) else np.nan


@njit(nogil=True, cache=True, fastmath=VECTOR_MATH, error_model="numpy")
def vlog_array(x, out):
    """``vlog`` over an array (for tests)."""
    for i in range(x.shape[0]):
        out[i] = vlog(x[i])


@njit(inline="always", error_model="numpy")
def _lower_bound(z, lo, hi, v):
    """First index in z[lo:hi] (sorted) with z ≥ v, or hi."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if z[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always", error_model="numpy")
def _upper_bound(z, lo, hi, v):
    """First index in z[lo:hi] (sorted) with z > v, or hi."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if z[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(nogil=True, cache=True, fastmath=VECTOR_MATH, error_model="numpy")
def value_grad(th, uN, iN, uD, iD, logN, logD, log_loss, delta, weights, wrow, eN, eD, g, c2, start2, z2, pre):
    """f(θ) for one θ = (a, b, e, α, β); writes ∇f into ``g``. ``eN``/``eD`` are scratch arrays of the
    distinct-N / distinct-D sizes. Design points (``iN``, ``iD``, ``logN``, ``logD``) come in two runs:
    the first G1 = len(log_loss) have one loss each, with weights (R, G1) — ``wrow`` picks the data set
    (a row of counts for the plain fit); the remaining G2 have several losses, summed in O(log m) from
    their sorted offsets ``z2`` (point k: z2[start2[k]:start2[k+1]], centre c2[k]) and the restarting
    prefix sums ``pre`` (3, R, U2 + G2) of w, w·z, w·z² (see ``design.py``). Non-finite results come
    back as f = inf, g = 0 (uphill for every line search). The single-loss loop is branch-free so it
    runs in SIMD lanes."""
    a, b, e, alpha, beta = th[0], th[1], th[2], th[3], th[4]
    for k in range(uN.shape[0]):
        eN[k] = np.exp(a - alpha * uN[k])
    for k in range(uD.shape[0]):
        eD[k] = np.exp(b - beta * uD[k])
    E = np.exp(e)
    f = 0.0
    g0 = g1 = g2 = g3 = g4 = 0.0
    G1 = log_loss.shape[0]
    for i in range(G1):
        tn = eN[iN[i]]
        td = eD[iD[i]]
        total = tn + td + E
        r = vlog(total) - log_loss[i]
        ar = abs(r)
        w = weights[wrow, i]
        h = w * (0.5 * r * r if ar <= delta else delta * (ar - 0.5 * delta))
        psi = w * min(max(r, -delta), delta)
        f += h
        c = psi / total
        cn = c * tn
        cd = c * td
        g0 += cn
        g1 += cd
        g2 += c * E
        g3 -= cn * logN[i]
        g4 -= cd * logD[i]
    for k in range(c2.shape[0]):
        i = G1 + k
        tn = eN[iN[i]]
        td = eD[iD[i]]
        total = tn + td + E
        q = vlog(total) - c2[k]
        s, t = start2[k], start2[k + 1]
        lo = _lower_bound(z2, s, t, q - delta)
        hi = _upper_bound(z2, lo, t, q + delta)
        w_lo, z_lo, zz_lo = pre[0, wrow, lo + k], pre[1, wrow, lo + k], pre[2, wrow, lo + k]
        w_hc, z_hc, zz_hc = pre[0, wrow, hi + k], pre[1, wrow, hi + k], pre[2, wrow, hi + k]
        w_up, z_up = pre[0, wrow, t + k] - w_hc, pre[1, wrow, t + k] - z_hc
        w_in, z_in, zz_in = w_hc - w_lo, z_hc - z_lo, zz_hc - zz_lo
        f += (delta * (w_lo * (q - 0.5 * delta) - z_lo) + delta * (z_up - w_up * (q + 0.5 * delta))
              + 0.5 * (w_in * q * q - 2.0 * q * z_in + zz_in))
        psi = delta * (w_lo - w_up) + w_in * q - z_in
        c = psi / total
        cn = c * tn
        cd = c * td
        g0 += cn
        g1 += cd
        g2 += c * E
        g3 -= cn * logN[i]
        g4 -= cd * logD[i]
    g[0], g[1], g[2], g[3], g[4] = g0, g1, g2, g3, g4
    if not (np.isfinite(f) and np.isfinite(g0) and np.isfinite(g1) and np.isfinite(g2) and np.isfinite(g3)
            and np.isfinite(g4)):
        for j in range(P):
            g[j] = 0.0
        return np.inf
    return f


@njit(nogil=True, cache=True, error_model="numpy")
def objective_rows(theta, rows, uN, iN, uD, iD, logN, logD, log_loss, delta, weights, c2, start2, z2, pre,
                   out_f, out_g):
    """f and ∇f for every row of θ (S, 5); row s uses data set ``rows[s]`` of ``weights``."""
    eN = np.empty(uN.shape[0])
    eD = np.empty(uD.shape[0])
    for s in range(theta.shape[0]):
        out_f[s] = value_grad(theta[s], uN, iN, uD, iD, logN, logD, log_loss, delta, weights, rows[s], eN, eD,
                              out_g[s], c2, start2, z2, pre)


@njit(nogil=True, cache=True, error_model="numpy")
def _clip_into(out, x, d, t, lo, hi):
    for j in range(P):
        v = x[j] + t * d[j]
        out[j] = min(max(v, lo[j]), hi[j])


@njit(nogil=True, cache=True, error_model="numpy")
def lbfgs_rows(theta0, rows, lo, hi, uN, iN, uD, iD, logN, logD, log_loss, delta, weights, c2, start2, z2, pre,
               max_iter, gtol, ftol, memory, out_x, out_f, out_it):
    """L-BFGS from every row of θ0 (S, 5), each to its own stopping point; results in out_x/f/it."""
    m = memory
    eN = np.empty(uN.shape[0])
    eD = np.empty(uD.shape[0])
    x = np.empty(P)
    g = np.empty(P)
    d = np.empty(P)
    q = np.empty(P)
    trial = np.empty(P)
    gt = np.empty(P)
    best_x = np.empty(P)
    best_g = np.empty(P)
    best_f = np.inf
    s_hist = np.empty((m, P))
    y_hist = np.empty((m, P))
    rho = np.empty(m)
    alphas = np.empty(m)
    for s in range(theta0.shape[0]):
        wrow = rows[s]
        for j in range(P):
            x[j] = min(max(theta0[s, j], lo[j]), hi[j])
        f = value_grad(x, uN, iN, uD, iD, logN, logD, log_loss, delta, weights, wrow, eN, eD, g, c2, start2, z2, pre)
        iters = 0
        gmax = 0.0
        for j in range(P):
            gmax = max(gmax, abs(g[j]))
        if np.isfinite(f) and gmax > gtol:
            rho[:] = 0.0  # 0 marks an empty or rejected pair: the two-loop skips it
            s_hist[:] = 0.0
            y_hist[:] = 0.0
            gamma = 1.0
            first = True
            for it in range(max_iter):
                # two-loop recursion, newest pair first
                for j in range(P):
                    q[j] = g[j]
                k = min(it, m)
                for jj in range(k):
                    slot = (it - 1 - jj) % m
                    dot = 0.0
                    for j in range(P):
                        dot += s_hist[slot, j] * q[j]
                    alphas[slot] = rho[slot] * dot
                    for j in range(P):
                        q[j] -= alphas[slot] * y_hist[slot, j]
                for j in range(P):
                    d[j] = gamma * q[j]
                for jj in range(k - 1, -1, -1):
                    slot = (it - 1 - jj) % m
                    dot = 0.0
                    for j in range(P):
                        dot += y_hist[slot, j] * d[j]
                    beta = rho[slot] * dot
                    for j in range(P):
                        d[j] += (alphas[slot] - beta) * s_hist[slot, j]
                slope = 0.0
                gsum = 0.0
                for j in range(P):
                    d[j] = -d[j]
                    slope += g[j] * d[j]
                    gsum += abs(g[j])
                if not slope < 0.0:  # memory misleads: steepest descent
                    for j in range(P):
                        d[j] = -g[j]
                t = min(1.0, 1.0 / max(gsum, 1e-300)) if first else 1.0
                # weak Wolfe line search: bisect while the Armijo condition fails, double while the
                # slope along the step is still steep (so every accepted pair has sᵀy > 0)
                accepted = False
                t_lo, t_hi = 0.0, np.inf
                ft = f
                for _ in range(MAX_BACKTRACKS):
                    _clip_into(trial, x, d, t, lo, hi)
                    ft = value_grad(trial, uN, iN, uD, iD, logN, logD, log_loss, delta, weights, wrow, eN, eD, gt,
                                    c2, start2, z2, pre)
                    dec = 0.0
                    dnew = 0.0
                    for j in range(P):
                        dec += g[j] * (trial[j] - x[j])
                        dnew += gt[j] * (trial[j] - x[j])
                    if not (np.isfinite(ft) and ft <= f + ARMIJO_C1 * min(dec, 0.0)):
                        t_hi = t
                    elif dnew < WOLFE_C2 * dec:
                        t_lo = t
                        accepted = True  # acceptable already; a longer step may be better
                        for j in range(P):
                            best_x[j] = trial[j]
                            best_g[j] = gt[j]
                        best_f = ft
                    else:
                        accepted = True
                        break
                    t = 2.0 * t if t_hi == np.inf else 0.5 * (t_lo + t_hi)
                else:
                    if accepted:  # ran out of trials: keep the last Armijo point
                        for j in range(P):
                            trial[j] = best_x[j]
                            gt[j] = best_g[j]
                        ft = best_f
                iters += 1
                if not accepted:  # no progress possible from here: converged as far as it will
                    break
                slot = it % m
                sy = yy = ss = 0.0
                for j in range(P):
                    sj = trial[j] - x[j]
                    yj = gt[j] - g[j]
                    s_hist[slot, j] = sj
                    y_hist[slot, j] = yj
                    sy += sj * yj
                    yy += yj * yj
                    ss += sj * sj
                if yy > 0.0 and sy > 1e-10 * np.sqrt(yy * ss) + 1e-300:
                    rho[slot] = 1.0 / sy
                    gamma = sy / yy
                    first = False
                else:
                    rho[slot] = 0.0
                    for j in range(P):
                        s_hist[slot, j] = 0.0
                        y_hist[slot, j] = 0.0
                small_step = (f - ft) <= ftol * max(max(abs(f), abs(ft)), 1e-300)
                f = ft
                pg = 0.0
                for j in range(P):
                    x[j] = trial[j]
                    g[j] = gt[j]
                    if not ((x[j] <= lo[j] and g[j] > 0.0) or (x[j] >= hi[j] and g[j] < 0.0)):
                        pg = max(pg, abs(g[j]))
                if small_step or pg <= gtol:
                    break
        for j in range(P):
            out_x[s, j] = x[j]
        out_f[s] = f
        out_it[s] = iters
