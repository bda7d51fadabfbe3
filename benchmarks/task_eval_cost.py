"""What scoring a ladder's tasks costs at one evaluation, against the validation loss and a training step.

    python benchmarks/task_eval_cost.py [--corpus shakespeare|synthetic] [--d-model 64] [--items 200]

Same process, same model (2 layers, seq_len 64, batch 32, one torch thread as the ladder's workers run):
medians of a training step, of the validation-loss evaluation (``eval_seqs`` held-out windows) and of
scoring the corpus's built-in task (cloze on Shakespeare, next_token on the synthetic language; every
(item, choice) pair is one row, 64 rows per forward pass). The ratio says how many training steps one
task evaluation costs; a ladder evaluates ``n_evals`` times per run.
"""

from __future__ import annotations

import argparse
import time

import torch


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[repeats // 2]


def main() -> None:
    from scalinglab.ladder.data import CorpusConfig, load_corpus
    from scalinglab.ladder.model import GPT, GPTConfig
    from scalinglab.ladder.task_suite import TaskSuite, parse_tasks
    from scalinglab.ladder.train import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="shakespeare", choices=("shakespeare", "synthetic"))
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--eval-seqs", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = CorpusConfig(kind="shakespeare", vocab_size=512) if args.corpus == "shakespeare" else CorpusConfig()
    corpus = load_corpus(cfg)
    model = GPT(GPTConfig(vocab_size=corpus.vocab_size, seq_len=64, d_model=args.d_model, n_layer=2, n_head=2))
    task = "cloze" if args.corpus == "shakespeare" else "next_token"
    t0 = time.perf_counter()
    suite = TaskSuite(parse_tasks([{"name": task, "items": args.items}], cfg.kind, "bench"), corpus)
    build = time.perf_counter() - t0
    val = corpus.val_batches(64, 32, args.eval_seqs)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        x, y = corpus.train_batch(0, 32, 64, 0)
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()
    t_step = median_time(step, 9)
    t_eval = median_time(lambda: evaluate(model, val), 5)
    t_task = median_time(lambda: suite.score(model, 64), 5)
    print(f"{args.corpus}, d_model {args.d_model}, {args.threads} thread(s): build {args.items} {task} items {build:.2f} s")
    print(f"  training step (32 × 64 tokens)    {t_step * 1e3:8.1f} ms")
    print(f"  validation loss ({args.eval_seqs} windows)     {t_eval * 1e3:8.1f} ms")
    print(f"  task scoring ({args.items} items × 4)     {t_task * 1e3:8.1f} ms  = {t_task / t_eval:.2f}× the loss "
          f"evaluation, {t_task / t_step:.1f} training steps")


if __name__ == "__main__":
    main()
