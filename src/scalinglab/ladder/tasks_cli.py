"""`scalinglab score-tasks`: multiple-choice accuracy and task bits per byte of a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scalinglab.console import stdout_console as console


def score_tasks_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A ladder checkpoint or Hugging Face model directory.")],
    tasks: Annotated[list[Path], typer.Argument(help="Task files: JSONL {context, choices, gold}.")],
    batch_rows: Annotated[int, typer.Option(help="(item, choice) rows per forward pass.")] = 64,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score multiple-choice tasks like lm-evaluation-harness: acc, acc_norm and bits per byte.

    Example: scalinglab score-tasks runs/ckpt/d64-L2 hellaswag.jsonl --json
    """
    from scalinglab.ladder.tasks import load_task_file, score_task
    from scalinglab.quant.models import context_length, forward_logits, load_float_model, load_tokenizer

    items = {p.stem: load_task_file(p) for p in tasks}  # every file checked before the model loads
    model = load_float_model(model_dir).eval()
    tok = load_tokenizer(model_dir)

    def encode(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    out = {}
    for name, its in items.items():
        s = score_task(its, lambda ids: forward_logits(model, ids), encode, context_length(model), batch_rows)
        out[name] = {f"acc:{name}": s.acc, f"acc_norm:{name}": s.acc_norm, f"task_loss:{name}": s.bpb, "items": len(its)}
    if as_json:
        print(json.dumps(out, indent=2))
        return
    for name, r in out.items():
        console.print(f"{name}: acc {r[f'acc:{name}']:.4f}, acc_norm {r[f'acc_norm:{name}']:.4f}, "
                      f"bpb {r[f'task_loss:{name}']:.4f} ({r['items']} items)")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("score-tasks")(score_tasks_cmd)
