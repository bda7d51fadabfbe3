"""Evaluation tokens/s of a float checkpoint against its quantized copy (e.g. LLM.int8), one run.

    flock /tmp/scalinglab-cpu.lock python benchmarks/eval_int8_speed.py FLOAT_DIR QUANT_DIR --data valid.txt
    flock /tmp/scalinglab-cpu.lock python benchmarks/eval_int8_speed.py FLOAT_DIR QUANT_DIR --data valid.txt --emulate-avx2
    ... --decode 127     # also decode one token at a time (KV cache, batch 1: the M = 1 path)
    ... --decode 127 --decode-batch 16 --dtype bf16   # 16 sequences at a time (M = 16), both models in bf16

Both models score the same sequences with ``scalinglab.quant.evaluate.perplexity`` (what `scalinglab
evaluate` runs), in alternating rounds; the fastest round of each is kept. The quantized model runs on
the int8 path hw/ chose for this machine (printed). With one torch thread (``--threads 1``) times are
process CPU time, immune to preemption by other processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("float_dir", type=Path)
    ap.add_argument("quant_dir", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="held-out text")
    ap.add_argument("--seqs", type=int, default=64, help="sequences scored per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--decode", type=int, default=0,
                    help="also time N single-token steps with the KV cache (batch 1: every linear sees M = 1)")
    ap.add_argument("--decode-batch", type=int, default=1, help="sequences decoded together (the M of each step)")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="cast both models (activations and float weights) to this dtype; quantized layers keep "
                         "their stored format")
    ap.add_argument("--emulate-avx2", action="store_true", help="run as on an AVX2-only CPU")
    args = ap.parse_args()
    if args.emulate_avx2:
        from scalinglab.hw.emulate import reexec

        reexec([a for a in sys.argv if a != "--emulate-avx2"])
    import os

    if args.threads:  # numba's OpenMP layer resets the shared OpenMP pool to its own count on first use
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    import torch

    from scalinglab.hw import detect, int8_plan
    from scalinglab.hw.calibrate import clock
    from scalinglab.quant.evaluate import load_any, perplexity
    from scalinglab.quant.models import context_length, load_tokenizer, text_to_batches

    if args.threads:
        torch.set_num_threads(args.threads)
    caps, plan = detect(), int8_plan()
    models = {"float": load_any(args.float_dir), "quantized": load_any(args.quant_dir)}
    if args.dtype == "bf16":
        for model, _label in models.values():
            model.to(torch.bfloat16)
    tok = load_tokenizer(args.float_dir)
    seq = context_length(models["float"][0])
    batches = text_to_batches(args.data.read_text(), tok, seq, n_seqs=args.seqs)
    now = clock()
    best, ppl = dict.fromkeys(models, float("inf")), {}
    for _ in range(args.rounds):
        for name, (model, _label) in models.items():
            t = now()
            ppl[name], n = perplexity(model, batches)
            best[name] = min(best[name], now() - t)
    print(f"CPU {caps.cpu_model}, effective ISA {caps.isa}; {args.dtype}; {torch.get_num_threads()} threads, timed by "
          f"{'process CPU time' if torch.get_num_threads() == 1 else 'wall time'}; "
          f"int8 paths {plan.describe()}")
    for name, (_model, label) in models.items():
        print(f"{name:>9} ({label}): {n / best[name]:9.0f} tokens/s, perplexity {ppl[name]:.3f} "
              f"({n} tokens, fastest of {args.rounds} rounds)")
    print(f"quantized / float tokens/s: {best['float'] / best['quantized']:.2f}×")
    if args.decode:
        ids = torch.cat(batches)[: args.decode_batch, : args.decode + 1]  # each step: one token per sequence
        dec = dict.fromkeys(models, float("inf"))
        with torch.no_grad():
            for _ in range(args.rounds):
                for name, (model, _label) in models.items():
                    past, t = None, now()
                    for i in range(ids.shape[1]):
                        past = model(ids[:, i : i + 1], past_key_values=past, use_cache=True).past_key_values
                    dec[name] = min(dec[name], now() - t)
        steps, rows = ids.shape[1], ids.shape[0]
        for name, (_model, label) in models.items():
            print(f"{name:>9} ({label}): {steps * rows / dec[name]:9.0f} tokens/s decoding one token at a time "
                  f"({steps} steps with the KV cache, batch {rows}, fastest of {args.rounds} rounds)")
        print(f"decode: quantized / float tokens/s: {dec['float'] / dec['quantized']:.2f}×")
