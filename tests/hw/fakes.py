"""Made-up calibrations for testing the dispatch rules deterministically."""

from __future__ import annotations

from scalinglab.hw.calibrate import Calibration


def make_calibration(fp32=(1.0, 10.0), bf16=(0.5, 5.0), int8=None, full_range=True,
                     train_fp32=(1.0, 2.0, 4.0, 8.0), train_bf16=(2.0, 1.5, 2.0, 3.0), key="k") -> Calibration:
    """Defaults: an AVX-512 BF16/VNNI-like machine (bf16 wins from width 256, int_mm fastest)."""
    int8 = {"int_mm": (0.5, 4.0), "fbgemm": (0.6, 5.0), "dequant": (1.1, 10.5)} if int8 is None else int8
    return Calibration(key=key, capabilities={}, created=0.0, seconds=1.0, load=0.1, gemm_fp32_ms=tuple(fp32),
                       gemm_bf16_ms=tuple(bf16), int8_ms=int8, fbgemm_full_range=full_range,
                       train_fp32_ms=tuple(train_fp32), train_bf16_ms=tuple(train_bf16))


# An AVX2-only machine as measured on a Zen 3 (no VNNI, no native bf16): torch._int_mm ~35× and bf16
# ~38× slower than fp32; fbgemm's AVX2 int8 GEMM faster than fp32; full range would saturate.
AVX2 = dict(fp32=(0.3, 24.0), bf16=(11.0, None), int8={"int_mm": (10.0, None), "fbgemm": (0.2, 14.0),
                                                          "dequant": (0.31, 24.5)},
            full_range=False, train_bf16=(30.0, None, None, None))
