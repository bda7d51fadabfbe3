"""Made-up calibrations for testing the dispatch rules deterministically."""

from __future__ import annotations

from scalinglab.hw.calibrate import Calibration, ce_shapes


def _ce_times(kernel_wins_from: dict[int, int]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Cross-entropy times per ce_shapes(): the kernel 2× faster where N·V ≥ kernel_wins_from[V], else 2× slower."""
    kernel, torch_ms = [], []
    for n, v in ce_shapes():
        t = 1e-6 * n * v
        kernel.append(t / 2 if n * v >= kernel_wins_from.get(v, float("inf")) else 2 * t)
        torch_ms.append(t)
    return tuple(kernel), tuple(torch_ms)


CE_DEFAULT = {256: 1 << 18, 1024: 1 << 16, 16384: 1 << 14}  # V = 64: torch always


def make_calibration(fp32=(0.1, 1.0, 10.0), bf16=(0.12, 0.5, 5.0), int8=None, full_range=True,
                     train_fp32=(1.0, 2.0, 4.0, 8.0), train_bf16=(2.0, 1.5, 2.0, 3.0), key="k",
                     int_mm_exact=True, ce=None) -> Calibration:
    """Defaults: an AVX-512 BF16/VNNI-like machine (bf16 wins from width 256, int_mm fastest for batches,
    gemv for one token)."""
    int8 = ({"int_mm": (0.1, 0.4, 4.0), "fbgemm": (0.11, 0.5, 5.0), "gemv": (0.05, 1.2, None),
             "dequant": (0.2, 1.1, 10.5)} if int8 is None else int8)
    kernel, torch_ms = _ce_times(CE_DEFAULT if ce is None else ce)
    return Calibration(key=key, capabilities={}, created=0.0, seconds=1.0, cpu_seconds=1.0, load=0.1,
                       gemm_fp32_ms=tuple(fp32), gemm_bf16_ms=tuple(bf16), int8_ms=int8, fbgemm_full_range=full_range,
                       train_fp32_ms=tuple(train_fp32), train_bf16_ms=tuple(train_bf16), int_mm_exact=int_mm_exact,
                       ce_kernel_ms=kernel, ce_torch_ms=torch_ms)


# An AVX2-only machine as measured on a Zen 3 (no VNNI, no native bf16): torch._int_mm inexact (and ~35×
# slower than fp32), bf16 ~38× slower; fbgemm's AVX2 int8 GEMM faster than fp32 for batches, our gemv for
# one token; full range would saturate.
AVX2 = dict(fp32=(0.07, 0.3, 24.0), bf16=(0.5, 11.0, None),
            int8={"fbgemm": (0.08, 0.2, 14.0), "gemv": (0.05, 0.7, None), "dequant": (0.1, 0.31, 24.5)},
            full_range=False, train_bf16=(30.0, None, None, None), int_mm_exact=False)
