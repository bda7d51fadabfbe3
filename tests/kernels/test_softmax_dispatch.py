"""cross_entropy_fastest: same answer as torch on both sides of the dispatch rule."""

from __future__ import annotations

import pytest
import torch

from scalinglab.kernels import cross_entropy_fastest
from scalinglab.kernels.softmax_dispatch import LARGE_VOCAB, MIN_VOCAB, use_kernel


@pytest.mark.parametrize(
    ("n", "v"), [(8, 50), (64, MIN_VOCAB), (32, LARGE_VOCAB)], ids=["tiny-torch-path", "mid-torch-path", "kernel-path"]
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_torch_either_path(n, v, reduction):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(n, v, generator=g) * 3
    targets = torch.randint(0, v, (n,), generator=g)
    torch.testing.assert_close(
        cross_entropy_fastest(logits, targets, reduction=reduction),
        torch.nn.functional.cross_entropy(logits, targets, reduction=reduction),
        rtol=2e-6,
        atol=1e-6,
    )


def test_rule_and_fallbacks():
    assert not use_kernel(8, 50) and not use_kernel(512, 512) and not use_kernel(16384, 64)
    assert use_kernel(512, 32_000) and use_kernel(2048, 256) and use_kernel(512, 1024) and use_kernel(1, 50_257)
    logits = torch.randn(64, 2048, requires_grad=True)
    loss = cross_entropy_fastest(logits, torch.zeros(64, dtype=torch.int64))
    loss.backward()  # autograd needs torch's path: the kernel is forward-only
    assert logits.grad is not None
