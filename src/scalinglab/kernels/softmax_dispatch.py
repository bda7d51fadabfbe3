"""Pick the faster cross-entropy path by shape: our one-read two-pass kernel, or torch's.

``torch.nn.functional.cross_entropy`` on CPU materialises the (N, V) log-softmax and then gathers:
about three reads and one write of the logits. Ours reads them once (two-pass pass 1 gives
logsumexp; the target logit is one gather), so it wins wherever the logits stream from memory, i.e.
any realistic vocabulary. For tiny problems torch's single fused call has less fixed overhead than
our array conversion and thread wake-up. Where the crossover lies depends on the machine, so it is
measured: hw/calibrate.py times both on a grid of (N, V) the first time a decision is needed (cached
per machine with the GEMM calibration), and ``hw.dispatch.use_ce_kernel`` reads the thresholds off it
(``scalinglab doctor`` prints them).
"""

from __future__ import annotations

from typing import Any

from scalinglab.kernels.softmax_api import TORCH_IGNORE_INDEX, cross_entropy

__all__ = ["cross_entropy_fastest", "use_kernel"]


def use_kernel(n_rows: int, vocab: int) -> bool:
    """True where our kernel measured faster than torch on this machine for (N, V) float32 logits."""
    from scalinglab.hw.dispatch import use_ce_kernel

    return use_ce_kernel(n_rows, vocab)


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
        return _within_torch_threads(lambda: cross_entropy(logits, targets, reduction=reduction, ignore_index=ignore_index))
    return torch.nn.functional.cross_entropy(logits, targets, reduction=reduction, ignore_index=ignore_index)


def _within_torch_threads(fn):
    """Run a numba-parallel kernel on at most torch's thread count, and leave torch's count as it was.

    numba's OpenMP threading layer shares the process's OpenMP pool with torch and resets it to numba's
    own count on first use: a trainer set to one thread (ladder workers, benchmarks) ran its later steps
    on two after one evaluation went through this kernel (4× the CPU time per step, measured)."""
    import numba
    import torch

    threads = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    numba.set_num_threads(min(numba_threads, threads))
    try:
        return fn()
    finally:
        numba.set_num_threads(numba_threads)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
