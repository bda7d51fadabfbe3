"""Evaluation with and without the cross-entropy kernel, one run.

    flock /tmp/scalinglab-cpu.lock python benchmarks/eval_cross_entropy.py

Times ``scalinglab.quant.evaluate.perplexity`` (the perplexity pass of ``scalinglab quantize`` /
``evaluate``; ladder validation goes through the same ``cross_entropy_fastest``) on a small ladder GPT at
three vocabulary sizes, twice in the same process: with the shape rule of
``kernels/softmax_dispatch.py`` (the kernel where it measured faster) and with torch's
``cross_entropy`` forced. Medians of 9 repeats, the two variants in a shuffled order per repeat; the
ratio is torch ÷ dispatch, and both perplexities are printed (they agree to ~1e-6 relative).
"""

from __future__ import annotations

import random
import statistics
import time

import torch

from scalinglab.kernels import softmax_dispatch
from scalinglab.ladder.model import GPT, GPTConfig
from scalinglab.quant.evaluate import perplexity

CASES = ((512, 8), (8192, 4), (50257, 2))  # (vocabulary, sequences per batch of 256 scored tokens)


def main(reps: int = 9) -> None:
    torch.manual_seed(0)
    rule = softmax_dispatch.use_kernel
    rules = {"dispatch": rule, "torch": lambda n_rows, vocab: False}
    print(f"{'V':>6} {'tokens':>8} {'kernel':>7} {'torch CE':>10} {'dispatch':>10} {'ratio':>6}  perplexity (torch / dispatch)")
    try:
        for vocab, n_seq in CASES:
            model = GPT(GPTConfig(vocab_size=vocab, seq_len=257, d_model=64, n_layer=2, n_head=2)).eval()
            batches = [torch.randint(0, vocab, (n_seq, 257)) for _ in range(4)]
            times: dict[str, list[float]] = {k: [] for k in rules}
            ppl = {}
            for r in rules.values():  # warm-up (numba compile, allocator)
                softmax_dispatch.use_kernel = r
                perplexity(model, batches)
            for _ in range(reps):
                order = list(rules)
                random.shuffle(order)
                for name in order:
                    softmax_dispatch.use_kernel = rules[name]
                    t = time.perf_counter()
                    ppl[name], n_tokens = perplexity(model, batches)
                    times[name].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{vocab:>6} {n_tokens:>8} {str(rule(n_seq * 256, vocab)):>7} {med['torch'] * 1e3:8.1f}ms "
                f"{med['dispatch'] * 1e3:8.1f}ms {med['torch'] / med['dispatch']:5.2f}×  {ppl['torch']:.6f} / {ppl['dispatch']:.6f}"
            )
    finally:
        softmax_dispatch.use_kernel = rule


if __name__ == "__main__":
    main()
