"""Pick the faster cross-entropy path by shape: our one-read two-pass kernel, or torch's.

``torch.nn.functional.cross_entropy`` on CPU materialises the (N, V) log-softmax and then gathers:
about three reads and one write of the logits. Ours reads them once (two-pass pass 1 gives
logsumexp; the target logit is one gather), so it wins wherever the logits stream from memory, i.e.
any realistic vocabulary. For tiny problems torch's single fused call has less fixed overhead than
our array conversion and thread wake-up. The thresholds are from ``scalinglab bench softmax``
(cross-entropy table) on the 2-core AVX-512 development machine; see the README's kernels section.
"""

from __future__ import annotations

from typing import Any

from scalinglab.kernels.softmax_api import TORCH_IGNORE_INDEX, cross_entropy

__all__ = ["cross_entropy_fastest", "use_kernel"]

# Measured (`scalinglab bench softmax` cross-entropy table, and the same timing over smaller shapes) after
# the faster pass 1: ours 7–24× faster at V = 32000 and 50257 for every N (1.7× already at
# 8×50257); at 256 ≤ V < 16384 faster once N·V ≥ 2^19 (1024×256: 1.27×, 1024×512: 1.38×, 512×1024: 1.59×,
# 512×2048: 2.0×, 8192×256: 1.48×) and mixed just below (512×512: 0.81×, 256×1024: 1.28×, 512×256: 0.99×);
# at V = 64 torch is faster at every N (16384×64: 0.64×): per-row overhead dominates such short rows.
LARGE_VOCAB = 16_384  # at or above: always the kernel
MIN_VOCAB = 256  # below: always torch
MIN_ELEMENTS = 1 << 19  # between the two: the kernel once N·V ≥ 512 Ki elements (2 MiB of float32)


def use_kernel(n_rows: int, vocab: int) -> bool:
    """True where our kernel measured faster than torch for (N, V) float32 logits."""
    return vocab >= LARGE_VOCAB or (vocab >= MIN_VOCAB and n_rows * vocab >= MIN_ELEMENTS)


def cross_entropy_fastest(
    logits: Any, targets: Any, reduction: str = "mean", ignore_index: int = TORCH_IGNORE_INDEX
) -> Any:
    """``torch.nn.functional.cross_entropy(logits, targets, ...)`` computed by whichever path is faster.

    Same arguments, result and dtype as torch for CPU float32/float64 (N, V) logits; anything else
    (other devices, dtypes, shapes, gradients required) goes to torch unchanged.
    """
    import torch

    eligible = (
        isinstance(logits, torch.Tensor)
        and logits.device.type == "cpu"
        and logits.dtype in (torch.float32, torch.float64)
        and logits.dim() == 2
        and not (logits.requires_grad and torch.is_grad_enabled())
        and use_kernel(logits.shape[0], logits.shape[1])
    )
    if eligible:
        return cross_entropy(logits, targets, reduction=reduction, ignore_index=ignore_index)
    return torch.nn.functional.cross_entropy(logits, targets, reduction=reduction, ignore_index=ignore_index)
