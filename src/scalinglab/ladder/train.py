"""Train one GPT on one corpus: AdamW, warm-up + cosine/WSD/constant schedule, clipping, accumulation,
optional bf16 autocast, log-spaced evaluation, atomic checkpoints and exact resume.

    from scalinglab.ladder.train import TrainConfig, train
    result = train(model_cfg, TrainConfig(tokens=2_000_000, lr=3e-3), corpus, workdir="runs/r0",
                   on_eval=lambda ev: print(ev))

Determinism: the initial weights come from ``torch.manual_seed(seed)`` and the batch of micro-step s is a
pure function of (seed, s) (:meth:`Corpus.train_batch`), so a run is reproducible given its seed (and the
thread count, which can change float summation order). A checkpoint (``state.safetensors``: model,
optimizer and RNG state as tensors, step and evaluations as validated JSON; see
:mod:`scalinglab.ladder.checkpoint`) is written atomically at every evaluation and at least every
``checkpoint_every_s`` seconds; a restarted run loads it and continues with bit-identical results.
Nothing is ever unpickled: a ``state.pt`` in the folder is refused with an :class:`InputError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from scalinglab.errors import InputError
from scalinglab.kernels.softmax_dispatch import cross_entropy_fastest
from scalinglab.ladder.checkpoint import STATE, load_state, refuse_pickle, save_state
from scalinglab.ladder.data import Corpus
from scalinglab.ladder.device import (
    COMPILE_MODES,
    DEVICES,
    autocast,
    resolve_device,
    should_compile,
    to_device,
)
from scalinglab.ladder.flops import flops_per_token
from scalinglab.ladder.model import GPT, GPTConfig
from scalinglab.ladder.noise_scale import NoiseScaleTracker

__all__ = ["TrainConfig", "EvalPoint", "TrainResult", "train", "lr_at", "eval_steps", "evaluate"]

SCHEDULES = ("cosine", "wsd", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


def uses_bf16(precision: str, model_cfg: GPTConfig, device: str = "cpu") -> bool:
    """Whether a run of this precision setting autocasts to bf16. "auto": always on CUDA; on the CPU it asks
    hw/: bf16 only from the width at which this machine's calibration measured bf16 faster than fp32 (never
    on a CPU without native bf16, where autocast runs 5–40× slower)."""
    if precision == "auto":
        if device == "cuda":
            return True
        from scalinglab.hw import use_bf16

        return use_bf16(model_cfg.d_model)
    return precision == "bf16"


MODEL_DIR = "model"


@dataclass(frozen=True)
class TrainConfig:
    tokens: int = 1_000_000  # D: training tokens (steps = ceil(D / (batch_size · grad_accum · T)))
    lr: float = 3e-3  # peak learning rate η
    schedule: str = "cosine"
    warmup_frac: float = 0.05  # fraction of steps of linear warm-up
    decay_frac: float = 0.2  # WSD: fraction of steps of the final linear decay
    min_lr_ratio: float = 0.1  # final lr = min_lr_ratio · η (cosine, WSD)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    batch_size: int = 32  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0
    # "bf16": autocast matmuls to bfloat16 on CPU (weights and optimizer stay fp32); "auto": bf16 where
    # this machine measured it faster at this width (hw/), fp32 elsewhere
    precision: str = "auto"
    n_evals: int = 8  # log-spaced evaluation points, the last at the final step
    eval_seqs: int = 256  # held-out sequences per evaluation
    checkpoint_every_s: float = 20.0
    device: str = "auto"  # auto (CUDA when torch sees a GPU), cpu or cuda — ladder/device.py
    compile: str = "auto"  # torch.compile: auto (CUDA runs of many steps), on, off

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InputError(f"train config: device {self.device!r}, expected one of {', '.join(DEVICES)}")
        if self.compile not in COMPILE_MODES:
            raise InputError(f"train config: compile {self.compile!r}, expected one of {', '.join(COMPILE_MODES)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"train config: schedule {self.schedule!r}, expected one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"train config: precision {self.precision!r}, expected one of {', '.join(PRECISIONS)}")
        for name in ("tokens", "batch_size", "grad_accum", "n_evals", "eval_seqs"):
            if int(getattr(self, name)) <= 0:
                raise InputError(f"train config: '{name}' = {getattr(self, name)!r}, expected a positive integer")
        if not self.lr > 0:
            raise InputError(f"train config: lr = {self.lr!r}, expected > 0")
        for name in ("warmup_frac", "decay_frac", "min_lr_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"train config: '{name}' = {getattr(self, name)!r}, expected a value in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    def steps(self, seq_len: int) -> int:
        return max(1, math.ceil(self.tokens / (self.batch_size * self.grad_accum * seq_len)))


@dataclass(frozen=True)
class EvalPoint:
    step: int  # optimizer steps done
    tokens: int
    flops: float
    loss: float  # validation loss, nats/token
    train_loss: float  # mean training loss since the previous evaluation
    lr: float
    elapsed: float  # training seconds so far (across restarts)
    # Gradient noise scale B_simple (sequences), smoothed over recent steps (ladder/noise_scale.py); None
    # without gradient accumulation. After a resume its moving average starts afresh.
    noise_scale: float | None = None


@dataclass(frozen=True)
class TrainResult:
    evals: list[EvalPoint]
    steps: int
    resumed_from: int  # step loaded from a checkpoint (0 = fresh)
    model_dir: Path | None


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` in [0, total): linear warm-up, then the schedule."""
    warmup = int(cfg.warmup_frac * total)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    lo = cfg.min_lr_ratio * cfg.lr
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = total - int(cfg.decay_frac * total)  # WSD (Hu et al. 2024): stable, then linear decay
    if step < decay_start:
        return cfg.lr
    return cfg.lr + (lo - cfg.lr) * (step + 1 - decay_start) / max(1, total - decay_start)


def eval_steps(total: int, n_evals: int) -> list[int]:
    """Log-spaced optimizer-step counts from total/64 to total, the last exactly ``total``."""
    points = np.geomspace(max(1.0, total / 64), total, n_evals)
    return sorted({int(round(p)) for p in points} | {total})


@torch.no_grad()
def evaluate(model: GPT, batches, precision: str = "fp32", device: str = "cpu") -> float:
    """Mean next-token loss (nats) over all tokens of the held-out batches (already on ``device``)."""
    bf16 = uses_bf16(precision, model.config, device)
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        with autocast(device, bf16):
            logits = model(x)
        # Two-pass kernel where it measured faster than torch (kernels/softmax_dispatch.py), torch elsewhere.
        total += float(cross_entropy_fastest(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train()
    return total / count


def _b_simple(gns: NoiseScaleTracker | None) -> float | None:
    value = gns.value() if gns is not None else None
    return value["b_simple"] if value is not None and math.isfinite(value["b_simple"]) else None


def train(model_cfg: GPTConfig, cfg: TrainConfig, corpus: Corpus, workdir: str | Path | None = None,
          on_eval: Callable[[EvalPoint], None] | None = None, on_resume: Callable[[int], None] | None = None,
          stop_after: int | None = None, should_stop: Callable[[], bool] | None = None,
          eval_hook: Callable[[GPT, EvalPoint], None] | None = None) -> TrainResult:
    """Train (or resume) a run; checkpoints and the final HF-layout model go under ``workdir``.

    ``on_resume(step)`` is called once when a checkpoint is loaded; ``stop_after`` ends the loop early after
    that many optimizer steps (a controlled interruption, for tests and time-boxed runs); ``should_stop()`` is
    polled every step and ends the loop the same way (a worker whose parent died stops cleanly).
    ``eval_hook(model, ev)`` runs after ``on_eval`` at every evaluation, before the checkpoint, under the run's
    autocast (the ladder scores its tasks there); like ``on_eval`` it is repeated after a resume, never skipped.
    """
    if model_cfg.vocab_size < corpus.vocab_size:
        raise InputError(f"model vocab_size {model_cfg.vocab_size} < corpus vocabulary {corpus.vocab_size}")
    T = model_cfg.seq_len
    total = cfg.steps(T)
    tokens_per_step = cfg.batch_size * cfg.grad_accum * T
    fpt = flops_per_token(model_cfg)
    device = resolve_device(cfg.device)
    bf16 = uses_bf16(cfg.precision, model_cfg, device)
    evals_at = set(eval_steps(total, cfg.n_evals))
    val = [(to_device(x, device), to_device(y, device)) for x, y in corpus.val_batches(T, cfg.batch_size, cfg.eval_seqs)]

    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg).to(device)
    if should_compile(cfg.compile, device, total):
        model.compile()  # in place: state_dict keys stay those of the plain module
    groups = model.param_groups(cfg.lr, cfg.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    gns = NoiseScaleTracker(model.parameters(), cfg.batch_size, cfg.grad_accum) if cfg.grad_accum >= 2 else None

    workdir = Path(workdir) if workdir is not None else None
    state_path = workdir / STATE if workdir is not None else None
    start, elapsed, evals = 0, 0.0, []
    if workdir is not None:
        refuse_pickle(workdir)
    if state_path is not None and state_path.is_file():
        start, elapsed, evals = load_state(state_path, model, opt, total, EvalPoint)
        if on_resume is not None:
            on_resume(start)

    def checkpoint(step: int) -> None:
        if state_path is not None:
            save_state(state_path, model, opt, step, elapsed, evals)

    model.train()
    last_ckpt, loss_sum, loss_n = time.perf_counter(), 0.0, 0
    end = total if stop_after is None else min(total, stop_after)
    done = start
    for step in range(start, end):
        t0 = time.perf_counter()
        lr = lr_at(step, total, cfg)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr / cfg.lr
        if gns is not None:
            gns.begin_step()
        for micro in range(cfg.grad_accum):
            x, y = corpus.train_batch(step * cfg.grad_accum + micro, cfg.batch_size, T, cfg.seed)
            with autocast(device, bf16):
                _, loss = model(to_device(x, device), to_device(y, device))
            (loss / cfg.grad_accum).backward()
            # summed on the device: a .item() per step would stall a GPU on every micro-batch
            loss_sum, loss_n = loss_sum + loss.detach().float(), loss_n + 1
            if gns is not None:
                gns.after_micro()
        if gns is not None:
            gns.end_step()  # before clipping: the estimator needs the raw gradients
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        elapsed += time.perf_counter() - t0
        done = step + 1
        if done in evals_at:
            ev = EvalPoint(step=done, tokens=done * tokens_per_step, flops=float(done * tokens_per_step * fpt),
                           loss=evaluate(model, val, cfg.precision, device), train_loss=float(loss_sum) / max(1, loss_n), lr=lr,
                           elapsed=elapsed, noise_scale=_b_simple(gns))
            evals.append(ev)
            loss_sum, loss_n = 0.0, 0
            if on_eval is not None:  # record first: a kill before the checkpoint only repeats this eval
                on_eval(ev)
            if eval_hook is not None:
                with torch.no_grad(), autocast(device, bf16):
                    eval_hook(model, ev)
            checkpoint(done)
            last_ckpt = time.perf_counter()
        elif time.perf_counter() - last_ckpt > cfg.checkpoint_every_s:
            checkpoint(done)
            last_ckpt = time.perf_counter()
        if should_stop is not None and should_stop():
            break

    if done < total:
        checkpoint(done)  # a controlled stop keeps all its work
    model_dir = None
    if done == total and workdir is not None:
        from scalinglab.ladder.hf import save_model

        model_dir = save_model(model.eval().cpu(), workdir / MODEL_DIR, corpus.tokenizer)
    return TrainResult(evals=evals, steps=done, resumed_from=start, model_dir=model_dir)
