"""Every quantized linear against its float reference, within the error its bit width allows.

The bound is error_bound() with each method's actual quantization steps: per-token / per-tensor
activation scales, per-channel steps Δ_j (OutlierTune, bound taken in the X/Δ domain where the step is
1), zero error on LLM.int8's float outlier columns. Calibration sees the same X, so static scales never
clamp and the bound is rigorous.
"""

from __future__ import annotations

import pytest
import torch

from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.config import OUTLIER_THRESHOLD
from scalinglab.quant.methods.llm_int8 import LLMInt8Config, llm_int8_linear
from scalinglab.quant.methods.outliertune import OutlierTuneConfig, outliertune_linear, symmetrization_shift
from scalinglab.quant.methods.rtn import RTNConfig, rtn_linear
from scalinglab.quant.methods.smoothquant import SmoothQuantConfig, smoothing_factors, smoothquant_linear
from scalinglab.quant.primitives import amax_to_scale, error_bound, qmax_for_bits, quantize_weight

SHAPES = [(1, 64, 48), (17, 96, 128), (128, 256, 64)]
SHAPE_IDS = ["M1-K64-N48", "M17-K96-N128", "M128-K256-N64"]
CASES = [(m, b) for m in ("rtn-token", "rtn-tensor", "rtn-static", "smoothquant", "outliertune") for b in (8, 6, 4)]
CASES += [("llm.int8", 8)]
CASE_IDS = [f"{m}-W{b}A{b}" for m, b in CASES]
FLOAT_TOL = 1e-4  # float32 summation-order slack, relative to the output scale


def _data(shape, seed=0):
    m, k, n = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) + 0.3  # an offset, so symmetrization has work to do
    x[:, [1, k // 2]] *= 15  # outlier input dims
    w = torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g)
    return x, w, b


def _stats(x, threshold=OUTLIER_THRESHOLD):
    st = ChannelStats(x.shape[1], threshold)
    st.update(x)
    return st


def _run(method, bits, x, w, b):
    """Returns (y_quant, bound) for one method."""
    qmax = qmax_for_bits(bits)
    if method.startswith("rtn"):
        gran = method.split("-")[1]
        cfg = RTNConfig(bits_w=bits, bits_a=bits, w_granularity="channel",
                        a_granularity="tensor" if gran != "token" else "token", a_dynamic=gran != "static")
        lin = rtn_linear(w, b, _stats(x), cfg)
        amax = x.abs().amax(1, keepdim=True) if gran == "token" else x.abs().amax()
        _, sw = quantize_weight(w, bits)
        return lin(x), error_bound(x, w, amax_to_scale(amax, qmax), sw[:, None])
    if method == "smoothquant":
        s = smoothing_factors(x.abs().amax(0), w.abs().amax(0), 0.5)
        xs, ws = x / s, w * s  # what the norm / linear fold does
        lin = smoothquant_linear(ws, b, _stats(xs), SmoothQuantConfig(bits_w=bits, bits_a=bits))
        _, sw = quantize_weight(ws, bits)
        return lin(xs), error_bound(xs, ws, amax_to_scale(xs.abs().amax(1, keepdim=True), qmax), sw[:, None])
    if method == "outliertune":
        st = _stats(x)
        lin = outliertune_linear(w, b, st, OutlierTuneConfig(bits_w=bits, bits_a=bits))
        z = symmetrization_shift(st.max, st.min)
        step = amax_to_scale((st.max - st.min) / 2, qmax)
        xt, wt = (x - z) / step, w * step  # the X/Δ domain: activation step 1
        _, sw = quantize_weight(wt, bits)
        return lin(x), error_bound(xt, wt, torch.ones(1), sw[:, None])
    if method == "llm.int8":
        st = _stats(x)
        lin = llm_int8_linear(w, b, st, LLMInt8Config())
        outl = (x.abs() >= OUTLIER_THRESHOLD).any(0)
        xr = x.masked_fill(outl, 0)
        x_step = amax_to_scale(xr.abs().amax(1, keepdim=True), 127) * (~outl)  # outlier columns: exact
        _, sw = quantize_weight(w, 8)
        w_step = sw[:, None] * (~outl)
        return lin(x), error_bound(x, w, x_step, w_step)
    raise ValueError(method)


@pytest.mark.parametrize(("method", "bits"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_quantized_linear_within_bit_width_bound(method, bits, shape):
    x, w, b = _data(shape)
    ref = x @ w.T + b
    y, bound = _run(method, bits, x, w, b)
    err = (y - ref).abs()
    slack = FLOAT_TOL * ref.abs().max()
    assert (err <= bound + slack).all(), f"max excess {(err - bound).max():.3g}"
    assert y.shape == ref.shape and y.dtype == ref.dtype


@pytest.mark.parametrize("bits", [8, 6, 4], ids=["8bit", "6bit", "4bit"])
def test_error_shrinks_with_bits_and_outliertune_beats_per_tensor(bits):
    x, w, b = _data((64, 128, 96))
    ref = x @ w.T + b
    rel = {m: float((_run(m, bits, x, w, b)[0] - ref).norm() / ref.norm()) for m in ("rtn-tensor", "outliertune")}
    assert rel["outliertune"] < rel["rtn-tensor"]
    assert rel["outliertune"] < {8: 0.03, 6: 0.12, 4: 0.45}[bits]


def test_weights_are_int8_and_float_weights_gone():
    x, w, b = _data((4, 64, 32))
    lin = rtn_linear(w, b, None, RTNConfig())
    assert lin.w_t.dtype == torch.int8 and lin.w_t.shape == (64, 32)
    assert not any(t.dtype == torch.float32 and t.numel() >= w.numel() for t in lin.buffers())
    assert list(lin.parameters()) == []


def test_input_dtype_and_leading_dims_preserved():
    x, w, b = _data((12, 64, 32))
    lin = rtn_linear(w, b, None, RTNConfig())
    y = lin(x.reshape(3, 4, 64).bfloat16())
    assert y.shape == (3, 4, 32) and y.dtype == torch.bfloat16
