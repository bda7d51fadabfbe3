"""An AVX2-only CPU emulated on this one (torch, oneDNN, fbgemm and numba capped by environment variables),
in a subprocess: detection reports AVX2, the real calibration picks a valid int8 path and precision,
and the int8 kernels (numba compiled for Haswell) and the chosen path give correct results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.hw.emulate import AVX2_ENV

SCRIPT = r"""
import json, torch
from scalinglab.hw import detect, dispatch
from scalinglab.kernels import int8_matmul as K
from scalinglab.kernels import int8_gemv as G
from scalinglab.kernels.int8_backends import full_range_exact, int_mm_exact
from scalinglab.quant.linear import QuantLinear
from scalinglab.quant.primitives import quantize_weight

caps = detect()
plan = dispatch.int8_plan()
g = torch.Generator().manual_seed(0)
x = torch.randn(24, 128, generator=g); x[:, 7] *= 20
w = torch.randn(64, 128, generator=g) / 11
b = torch.randn(64, generator=g)
q, s = K.quantize_rows(x, 127)
q_ref, s_ref = K.quantize_rows_reference(x, 127)
acc = torch.randint(-5000, 5000, (24, 64), dtype=torch.int32, generator=g)
sw = torch.rand(64, generator=g)
epi = K.dequantize_epilogue(acc, s, sw, b)

w_q, w_s = quantize_weight(w, 8)
lin = QuantLinear.from_parts(w_q, w_s, b, "llm.int8", 8, 8, outlier_cols=torch.tensor([7]), outlier_w=w[:, [7]])
y = lin(x)
ref = K.llm_int8_matmul_reference(x, w, b, 6.0)
xq1, sx1 = K.quantize_rows(x[:1], 127)
exact1 = (xq1.double() @ lin.codes().double()).float() * (sx1[:, None] * w_s) + b
print(json.dumps({
    "capability": str(torch.backends.cpu.get_cpu_capability()), "isa": caps.isa, "flags": list(caps.flags),
    "path": plan.path, "paths": list(plan.paths), "full_range": plan.full_range, "full_range_exact": full_range_exact(),
    "int_mm_exact": int_mm_exact(), "gemv_exact": bool(torch.equal(G.w8a8_gemv(x[:1], lin.codes(), w_s, b, 127), exact1)),
    "module_path": lin.path, "bf16_from": dispatch.bf16_min_width(dispatch.calibration()),
    "codes_equal": bool(torch.equal(q, q_ref)), "scales_close": bool(torch.allclose(s, s_ref)),
    "epilogue_close": bool(torch.allclose(epi, acc.float() * s[:, None] * sw + b, rtol=1e-6, atol=1e-4)),
    "rel_err_vs_reference": float((y - ref).norm() / ref.norm()),
    "rel_err_ref_vs_float": float((ref - (x @ w.T + b)).norm() / ref.norm()),
}))
"""


@pytest.mark.slow
def test_avx2_emulation_detects_dispatches_and_computes_correctly(tmp_path):
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, **AVX2_ENV, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": src}
    env.pop("SCALINGLAB_INT8_PATH", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["capability"] == "AVX2" and r["isa"] == "avx2"
    assert not {"avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"} & set(r["flags"])
    assert r["path"] in ("fbgemm", "dequant") and r["module_path"] == r["path"]
    assert "int_mm" not in r["paths"]  # oneDNN's AVX2 int8 GEMM saturates: not a candidate
    assert r["full_range_exact"] is False and r["full_range"] is False  # fbgemm's AVX2 kernels saturate at 8 bits
    assert r["int_mm_exact"] is False and r["gemv_exact"]  # our kernel stays exact as Haswell code
    assert r["codes_equal"] and r["scales_close"] and r["epilogue_close"]
    # the chosen path's distance from the plain reference is within the size of the quantization error itself
    assert r["rel_err_vs_reference"] <= 2.5 * r["rel_err_ref_vs_float"] + 1e-6
    assert list(tmp_path.glob("scalinglab/hw-*.json"))  # the calibration was cached
