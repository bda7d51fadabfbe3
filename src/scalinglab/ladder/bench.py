"""Training throughput: our trainer vs a minimal plain-PyTorch GPT loop, fp32 and bf16, vs matmul peak.

    python benchmarks/train_throughput.py [--seconds 10] [--quick] [--emulate-avx2]   # or: scalinglab bench train

Both sides train the same shapes on the same batches (the synthetic corpus, sampled per step) with AdamW,
gradient clipping and the same precision. ``auto`` is timed as its own run (the trainer resolves it
through hw/: bf16 only where this machine measured bf16 faster at that width), so the table shows
whether ``auto`` ever costs speed against fp32. The reference is the loop everyone writes first (nanoGPT style:
one fused c_attn Linear, SDPA, LayerNorm, GELU, tied embeddings, ``torch.optim.AdamW`` defaults); ours is
:func:`scalinglab.ladder.train.train` end to end (schedule, data, logging; evaluation time excluded).
Runs alternate ref/ours ``repeats`` times and keep each side's best, so a noisy neighbour hurts both
equally. Achieved FLOP/s use :func:`flops_per_token`; the peak is a measured large square matmul.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.ladder.data import CorpusConfig, load_corpus
from scalinglab.ladder.flops import flops_per_token
from scalinglab.ladder.model import GPTConfig
from scalinglab.ladder.synthetic import MarkovConfig
from scalinglab.ladder.train import TrainConfig, train

__all__ = ["main", "matmul_peak", "reference_tokens_per_s", "ours_tokens_per_s", "SHAPES"]

SHAPES = {  # name: (model config, batch size)
    "demo-d64": (GPTConfig(vocab_size=64, seq_len=64, d_model=64, n_layer=2, n_head=2), 32),
    "d256-L4": (GPTConfig(vocab_size=512, seq_len=128, d_model=256, n_layer=4, n_head=4), 16),
}
PEAK_N = 2048  # square matmul size for the peak measurement


class RefBlock(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.c_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.c_proj(y)
        return x + self.c_out(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class RefGPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(cfg.vocab_size, cfg.d_model), nn.Embedding(cfg.seq_len, cfg.d_model)
        self.h = nn.ModuleList(RefBlock(cfg.d_model, cfg.n_head) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def reference_tokens_per_s(cfg: GPTConfig, batch_size: int, steps: int, corpus, precision: str) -> float:
    from scalinglab.hw.calibrate import clock

    now = clock()
    torch.manual_seed(0)
    model = RefGPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    elapsed = 0.0
    for step in range(steps):
        t0 = now()
        x, y = corpus.train_batch(step, batch_size, cfg.seq_len, 0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        elapsed += now() - t0
    return steps * batch_size * cfg.seq_len / elapsed


def ours_tokens_per_s(cfg: GPTConfig, batch_size: int, steps: int, corpus, precision: str) -> float:
    """Tokens/s of :func:`train` (its own clock, evaluation excluded). With one thread, process CPU time
    of the whole call instead — immune to preemption, and including model setup and the one tiny
    evaluation, so it slightly understates ours."""
    from scalinglab.hw.calibrate import clock

    tokens = steps * batch_size * cfg.seq_len
    tc = TrainConfig(tokens=tokens, lr=1e-3, batch_size=batch_size, precision=precision, n_evals=1, eval_seqs=1)
    cpu = clock() is time.process_time
    t0 = time.process_time()
    res = train(cfg, tc, corpus)
    return tokens / (time.process_time() - t0 if cpu else res.evals[-1].elapsed)


def matmul_peak(dtype: torch.dtype, n: int = PEAK_N, repeats: int = 5) -> float:
    """Best FLOP/s of an n×n×n matmul (2n³ FLOPs) over a few repeats; a dtype this CPU runs in slow
    generic code (bf16 without native support: 0.3 GFLOP/s, a minute per 2048³ call) is measured at
    512³ instead."""
    from scalinglab.hw.calibrate import clock

    now = clock()
    small = torch.randn(512, 512, dtype=dtype)
    t0 = now()
    torch.mm(small, small)
    if (now() - t0) * (n / 512) ** 3 > 1.0:
        n = 512
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t0 = now()
        torch.mm(a, b)
        best = min(best, now() - t0)
    return 2 * n**3 / best


def main(seconds: float = 10.0, repeats: int = 3, shapes: tuple[str, ...] = tuple(SHAPES)) -> list[dict]:
    from scalinglab.hw import detect
    from scalinglab.ladder.train import uses_bf16

    caps = detect()
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"CPU {caps.cpu_model}, effective ISA {caps.isa}"
          + (" (" + " ".join(f"{k}={v}" for k, v in caps.env.items()) + ")" if caps.env else ""))
    timer = "process CPU time (1 thread)" if torch.get_num_threads() == 1 else "wall time"
    print(f"threads {torch.get_num_threads()}, timed by {timer}; matmul peak ({PEAK_N}³, 512³ for a dtype without native support): fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    rows = []
    for name in shapes:
        cfg, batch = SHAPES[name]
        corpus = load_corpus(CorpusConfig(markov=MarkovConfig(vocab_size=cfg.vocab_size, order=1, branching=8)))
        auto = "bf16" if uses_bf16("auto", cfg) else "fp32"
        by_precision = {}
        for precision in ("fp32", "bf16", "auto"):
            # Steps per precision so each timed run lasts about `seconds / (2 · repeats)`: a CPU without
            # native bf16 runs it many times slower, and a fixed step count would take minutes.
            probe_precision = auto if precision == "auto" else precision
            probe = reference_tokens_per_s(cfg, batch, 3, corpus, probe_precision)
            steps = max(5, int(probe * seconds / (2 * repeats) / (batch * cfg.seq_len)))
            ref = ours = 0.0
            for _ in range(repeats):
                ref = max(ref, reference_tokens_per_s(cfg, batch, steps, corpus, probe_precision))
                ours = max(ours, ours_tokens_per_s(cfg, batch, steps, corpus, precision))
            achieved = ours * flops_per_token(cfg)
            row = {"shape": name, "precision": precision, "resolved": probe_precision, "steps": steps,
                   "ref_tok_s": ref, "ours_tok_s": ours, "speedup": ours / ref, "gflops": achieved / 1e9,
                   "peak_frac": achieved / peaks[probe_precision]}
            rows.append(row)
            by_precision[precision] = row
            label = f"auto→{auto}" if precision == "auto" else precision
            print(f"{name:9s} {label:10s} ref {ref:9.0f} tok/s  ours {ours:9.0f} tok/s  ours/ref {ours / ref:5.2f}×  "
                  f"{achieved / 1e9:6.1f} GFLOP/s = {100 * row['peak_frac']:4.1f}% of {probe_precision} matmul peak",
                  flush=True)
        fp32 = by_precision["fp32"]["ours_tok_s"]
        print(f"{name:9s} ours: bf16/fp32 {by_precision['bf16']['ours_tok_s'] / fp32:.2f}×, "
              f"auto (→{auto})/fp32 {by_precision['auto']['ours_tok_s'] / fp32:.2f}×")
    return rows
