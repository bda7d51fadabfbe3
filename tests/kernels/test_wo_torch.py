"""torch's CPU int4 kernel as a W4A16 path: layout conversion and agreement with the reference."""

from __future__ import annotations

import pytest
import torch

from scalinglab.kernels import wo_format as F
from scalinglab.kernels import wo_torch as T
from scalinglab.kernels.wo_gemm import wo_matmul_reference

pytestmark = pytest.mark.skipif(not T.available(), reason="this torch has no CPU int4 kernel in the probed layout")


@pytest.mark.parametrize("g", T.GROUPS, ids=[f"g{g}" for g in T.GROUPS])
def test_layout_matches_torch_converter_and_inverts(g):
    gen = torch.Generator().manual_seed(g)
    q = torch.randint(0, 16, (128, 512), generator=gen, dtype=torch.int32)
    ours = F.pack_codes(q.to(torch.uint8), 4, g)
    theirs = T.to_torch_layout(ours, g)
    assert torch.equal(theirs, torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
    assert torch.equal(T.from_torch_layout(theirs, g), ours)


@pytest.mark.parametrize("m", [1, 3, 16], ids=["M1", "M3", "M16"])
@pytest.mark.parametrize("g", [32, 128], ids=["g32", "g128"])
def test_int4_mm_within_bf16_step_rounding_of_the_reference(g, m):
    gen = torch.Generator().manual_seed(m)
    w = torch.randn(128, 256, generator=gen)
    q, s, z = F.quantize_groupwise(w, 4, g)
    codes = F.pack_codes(q, 4, g)
    x = torch.randn(m, 256, generator=gen).bfloat16()
    y = T.int4_mm(x, T.to_torch_layout(codes, g), g, T.scales_and_zeros(s, z, torch.bfloat16))
    ref = wo_matmul_reference(x, codes, s, z, None, 4, g)
    # per weight: |ΔŴ| ≤ s/32 from bf16 steps/offsets (kernels/wo_torch.py), then bf16 rounding of y
    s_el = s.float().repeat_interleave(g, dim=1)
    bound = x.float().abs() @ (s_el / 32).T + (x.float().abs() @ F.dequantize_groupwise(codes, s, z, 4, g, 256).abs().T) * 2**-8
    assert ((y.float() - ref).abs() <= bound + ref.abs() * 2**-8).all()
