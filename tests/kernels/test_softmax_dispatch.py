"""cross_entropy_fastest: same answer as torch on both sides of the dispatch rule."""

from __future__ import annotations

import pytest
import torch
from tests.hw.fakes import make_calibration

from scalinglab.hw import dispatch as D
from scalinglab.kernels import cross_entropy_fastest
from scalinglab.kernels.softmax_dispatch import use_kernel


@pytest.fixture(autouse=True)
def _calibration():
    """Thresholds as on an AVX-512 machine: V < 256 torch; from 2^18 elements at V = 256, from 2^16 at
    V = 1024, from 2^14 at V = 16384."""
    with D.injected(make_calibration()):
        yield


@pytest.mark.parametrize(
    ("n", "v"), [(8, 50), (64, 256), (32, 16384)], ids=["tiny-torch-path", "mid-torch-path", "kernel-path"]
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
    assert not use_kernel(8, 50) and not use_kernel(512, 256) and not use_kernel(16384, 64)
    assert use_kernel(512, 32_000) and use_kernel(1024, 256) and use_kernel(64, 1024) and use_kernel(1, 50_257)
    logits = torch.randn(64, 2048, requires_grad=True)
    loss = cross_entropy_fastest(logits, torch.zeros(64, dtype=torch.int64))
    loss.backward()  # autograd needs torch's path: the kernel is forward-only
    assert logits.grad is not None


@pytest.mark.parametrize("vocab", [64, 1024], ids=["torch-path", "kernel-path"])
def test_evaluation_cross_entropy_goes_through_the_dispatch(monkeypatch, vocab):
    """Ladder validation loss and quantization perplexity use cross_entropy_fastest: the kernel where the
    calibration measured it faster (large N·V), torch elsewhere, with torch's numbers either way."""
    import math

    from scalinglab.kernels import softmax_dispatch
    from scalinglab.ladder.model import GPT, GPTConfig
    from scalinglab.ladder.train import evaluate
    from scalinglab.quant.evaluate import perplexity

    kernel_calls = []
    real = softmax_dispatch.cross_entropy
    monkeypatch.setattr(softmax_dispatch, "cross_entropy", lambda *a, **k: kernel_calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, seq_len=65, d_model=32, n_layer=1, n_head=2))
    ids = torch.randint(0, vocab, (4, 8, 65))  # 4 batches of 8×64 next-token targets: 512 rows
    batches = [(b[:, :-1], b[:, 1:]) for b in ids]
    with torch.no_grad():
        want = [torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1)) for x, y in batches]
    got = evaluate(model, batches)
    assert got == pytest.approx(float(torch.stack(want).mean()), rel=2e-6)
    ppl, n = perplexity(model, [b for b in ids])
    assert n == 4 * 8 * 64 and math.log(ppl) == pytest.approx(got, rel=2e-6)
    expect_kernel = softmax_dispatch.use_kernel(8 * 64, vocab)
    assert expect_kernel == (vocab == 1024)
    assert (len(kernel_calls) == 8) if expect_kernel else not kernel_calls


def test_the_kernel_leaves_torch_thread_count_alone():
    """numba's OpenMP layer may reset the shared pool on first use; a one-thread trainer must stay at one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        logits = torch.randn(64, 16384)
        assert use_kernel(64, 16384)
        cross_entropy_fastest(logits, torch.zeros(64, dtype=torch.int64))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
