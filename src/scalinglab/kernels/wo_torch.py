"""W4A16 through torch's own CPU int4 kernel (``aten._weight_int4pack_mm_for_cpu``), where it applies.

torch ships a fused group-wise int4 × bf16 matmul for CPU (the kernel gpt-fast and torchao call). On
this CPU it ran a 4096 × 4096 W4A16 GEMV 4.4× faster than bf16 ``F.linear`` with one thread, against
1.6× for the best numba loop nest we wrote (benchmarks/weight_only.py prints both), so bf16 activations
take it when its constraints hold:

- 4 bits, group g ∈ {32, 64, 128, 256}, in_features a multiple of g (no padding),
  out_features a multiple of 64 (the layout below);
- bf16 activations: its fp32 variant measured 10–100× slower than its bf16 one, so fp32 stays on numba;
- its weight layout: blocks of 64 output rows; for each input k, 32 bytes whose low nibbles hold rows
  0–31 and high nibbles rows 32–63 of the block (checked against ``_convert_weight_to_int4pack_for_cpu``
  once per process; any mismatch or a missing op turns this path off);
- its step and offset: ``Ŵ = (q − 8)·s + zero`` per (group, row), both in the activation dtype. Ours is
  ``(q − z)·s``, so ``zero = (8 − z)·s``. In bf16 the step and offset round to 8 significant bits:
  Ŵ moves by at most (|q − 8| + |8 − z|)·s·2⁻⁹ ≤ s/32 per weight, a sixteenth of the quantization error
  bound s/2 — and the activations are bf16 already.

The module (quant/weight_only.py) keeps the codes in this layout *instead of* its own while the path
runs (same bytes), plus the bf16 step/offset table (4 bytes per group), and restores its own layout for
checkpoints.
"""

from __future__ import annotations

import functools

import torch

from scalinglab.kernels.wo_format import pack_codes, unpack_codes

__all__ = ["GROUPS", "BLOCK_N", "available", "eligible", "to_torch_layout", "from_torch_layout",
           "scales_and_zeros", "int4_mm"]

GROUPS = (32, 64, 128, 256)
BLOCK_N = 64  # output rows per block of torch's layout
_MID = 8  # torch's int4 codes are centred on 8


def to_torch_layout(codes: torch.Tensor, g: int) -> torch.Tensor:
    """Our packed 4-bit codes (N × K/2, group-local halves) → torch's CPU int4 layout (N × K/2)."""
    q = unpack_codes(codes, 4, g)  # (N, K) uint8
    n, k = q.shape
    qb = q.reshape(n // BLOCK_N, 2, BLOCK_N // 2, k)  # (block, nibble, row in half, k)
    return (qb[:, 0] | (qb[:, 1] << 4)).permute(0, 2, 1).reshape(n, k // 2).contiguous()


def from_torch_layout(packed: torch.Tensor, g: int) -> torch.Tensor:
    """Inverse of :func:`to_torch_layout`."""
    n, half = packed.shape
    k = 2 * half
    pb = packed.reshape(n // BLOCK_N, k, BLOCK_N // 2).permute(0, 2, 1)  # (block, row in half, k)
    q = torch.stack([pb & 15, pb >> 4], dim=1).reshape(n, k)
    return pack_codes(q, 4, g)


@functools.cache
def available() -> bool:
    """The op exists and its layout is the one :func:`to_torch_layout` writes (probed once)."""
    op = getattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu", None)
    convert = getattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu", None)
    if op is None or convert is None:
        return False
    try:
        q = torch.randint(0, 16, (2 * BLOCK_N, 64), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
        ours = to_torch_layout(pack_codes(q.to(torch.uint8), 4, 32), 32)
        return torch.equal(convert(q, 1), ours)
    except (RuntimeError, TypeError):
        return False


def eligible(bits: int, g: int, in_features: int, out_features: int, padded_in: int) -> bool:
    return (bits == 4 and g in GROUPS and padded_in == in_features and out_features % BLOCK_N == 0
            and available())


def scales_and_zeros(scales: torch.Tensor, zeros: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """torch's (G × N × 2) table: step s and offset (8 − z)·s per (group, row), in ``dtype``."""
    s = scales.float()
    return torch.stack([s, (_MID - zeros.float()) * s], dim=-1).transpose(0, 1).to(dtype).contiguous()


def int4_mm(x: torch.Tensor, packed: torch.Tensor, g: int, sz: torch.Tensor) -> torch.Tensor:
    """``x · Ŵᵀ`` (M × N) for bf16 x (M × K) on torch's kernel."""
    return torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, g, sz)
