"""Ladder specs: a TOML/YAML file (or dict) → the list of training jobs it describes.

A spec names a corpus, shared model and training settings, a list of model sizes, and either token
budgets per size or an IsoFLOP grid; learning rates and seeds multiply the grid::

    name: demo-synthetic
    corpus: {kind: synthetic, markov: {vocab_size: 64, order: 1, branching: 8}}
    model: {seq_len: 64, n_head: 2}                  # defaults for every size (GPTConfig fields)
    sizes:                                           # each entry overrides `model`
      - {d_model: 16, n_layer: 1}
      - {d_model: 32, n_layer: 2}
    tokens: [2.0e5, 6.0e5, 2.0e6]                    # D per run; or tokens_per_param: [5, 20, 80]
    # isoflop: [1.0e11, 3.0e11]                      # or: C budgets; D = C / flops_per_token(size)
    train: {lr: 3.0e-3, schedule: cosine, batch_size: 32}   # TrainConfig fields
    lrs: [3.0e-3]                                    # optional sweep (overrides train.lr)
    batch_sizes: [16, 64]                            # optional sweep: sequences per optimizer step
    seeds: [0]
    device: auto                                     # auto | cpu | cuda (copied into every job's train)
    gpus_per_job: 1                                  # GPUs a job asks Ray for on CUDA; 0.25 → 4 share one
    quantize:                                        # optional: quantize and evaluate each finished run
      - {method: rtn, bits: 4, activations: none, group_size: 32}   # fields: ladder/autoquant.py

Exactly one of ``tokens``, ``tokens_per_param`` (× non-embedding N) and ``isoflop`` must be given.
A ``batch_sizes`` entry B runs as micro-batches × accumulation (:func:`split_batch`; at least two
micro-batches from B = 2 up, so the gradient noise scale is measured), overriding ``train.batch_size``
(then the largest micro-batch) and ``train.grad_accum``; the run id gains ``/B<B>``.
``quantize`` configs (:class:`~scalinglab.ladder.autoquant.QuantSpec`) are applied to every run's final
checkpoint when it finishes; a weight-only ``group_size`` must divide each linear's input width it is
narrower than. Every error names the file and the field.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.ladder.autoquant import QuantSpec, check_groups, parse_quantize
from scalinglab.ladder.data import CorpusConfig
from scalinglab.ladder.flops import flops_per_token, non_embedding_params
from scalinglab.ladder.model import GPTConfig
from scalinglab.ladder.spec_checks import check_fields, check_memory, check_train_ranges
from scalinglab.ladder.synthetic import MarkovConfig
from scalinglab.ladder.train import TrainConfig

__all__ = ["Job", "LadderSpec", "load_spec", "parse_spec", "split_batch"]

TOP_KEYS = {"name", "corpus", "model", "sizes", "tokens", "tokens_per_param", "isoflop", "train", "lrs", "batch_sizes",
            "seeds", "device", "gpus_per_job", "quantize"}


@dataclass(frozen=True)
class Job:
    """One training run of a ladder; ``run`` is its id in the store."""

    run: str
    group: str
    model: GPTConfig
    train: TrainConfig
    corpus: CorpusConfig

    def to_dict(self) -> dict:
        return {"run": self.run, "group": self.group, "model": self.model.to_dict(), "train": self.train.to_dict(),
                "corpus": self.corpus.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(run=d["run"], group=d["group"], model=GPTConfig(**d["model"]), train=TrainConfig(**d["train"]),
                   corpus=CorpusConfig.from_dict(d["corpus"]))


@dataclass(frozen=True)
class LadderSpec:
    name: str
    jobs: tuple[Job, ...]
    gpus_per_job: float = 1.0  # fraction of a GPU each CUDA job reserves (Ray; the local pool's worker count)
    quantize: tuple[QuantSpec, ...] = ()  # post-training quantizations evaluated on every finished run


def _build(cls, values: dict, where: str):
    # Types first (no booleans as integers, no fractions truncated, no infinities), then the config's own checks.
    check_fields(cls, values, where, {"markov": MarkovConfig} if cls is CorpusConfig else None)
    try:
        return cls.from_dict(values) if hasattr(cls, "from_dict") else cls(**values)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def _numbers(values, where: str, integer: bool = False) -> list:
    if not isinstance(values, list) or not values:
        raise InputError(f"{where}: expected a non-empty list of numbers")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            raise InputError(f"{where}[{i}]: {v!r} is a boolean, not a number")
        try:
            x = float(v)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{where}[{i}]: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise InputError(f"{where}[{i}]: {v!r} is not a finite number")
        if not x > 0 and not (integer and x == 0):
            raise InputError(f"{where}[{i}]: {v!r} must be > 0")
        if integer and x != int(x):
            raise InputError(f"{where}[{i}]: {v!r} must be an integer")
        out.append(int(x) if integer else x)
    return out


def parse_spec(raw: dict, source: str = "spec") -> LadderSpec:
    """Validate a spec mapping and expand it into jobs (sizes × budgets × lrs × seeds)."""
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a mapping at the top level")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError(f"{source}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(TOP_KEYS))})")
    name = str(raw.get("name", Path(source).stem))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise InputError(f"{source}: name {name!r} may only use letters, digits, '_', '.', '-'")
    corpus = _build(CorpusConfig, raw.get("corpus", {}), f"{source}: corpus")
    base_model = raw.get("model", {})
    if not isinstance(base_model, dict):
        raise InputError(f"{source}: model: expected a table of GPTConfig fields")
    sizes = raw.get("sizes")
    if not isinstance(sizes, list) or not sizes:
        raise InputError(f"{source}: sizes: expected a non-empty list of model settings")
    budgets = [k for k in ("tokens", "tokens_per_param", "isoflop") if k in raw]
    if len(budgets) != 1:
        raise InputError(f"{source}: give exactly one of tokens, tokens_per_param, isoflop (found: {budgets or 'none'})")
    kind = budgets[0]
    values = _numbers(raw[kind], f"{source}: {kind}")
    base_train = raw.get("train", {})
    if not isinstance(base_train, dict):
        raise InputError(f"{source}: train: expected a table of TrainConfig fields, got {type(base_train).__name__}")
    if "device" in raw:
        base_train = {"device": raw["device"], **base_train}  # a device set in train wins
    gpus_per_job = _gpus_per_job(raw.get("gpus_per_job", 1.0), source)
    lrs = _numbers(raw["lrs"], f"{source}: lrs") if "lrs" in raw else [None]
    seeds = _numbers(raw["seeds"], f"{source}: seeds", integer=True) if "seeds" in raw else [None]
    batches = _batch_sizes(raw["batch_sizes"], f"{source}: batch_sizes") if "batch_sizes" in raw else [None]
    quantize = parse_quantize(raw["quantize"], f"{source}: quantize") if "quantize" in raw else ()
    micro_max = base_train.get("batch_size", TrainConfig.batch_size) if isinstance(base_train, dict) else 0

    jobs = []
    for i, size in enumerate(sizes):
        if not isinstance(size, dict):
            raise InputError(f"{source}: sizes[{i}]: expected a table of model settings")
        model = _build(GPTConfig, {"vocab_size": _vocab(corpus), **base_model, **size}, f"{source}: sizes[{i}]")
        if model.vocab_size < _vocab(corpus):
            raise InputError(f"{source}: sizes[{i}]: vocab_size {model.vocab_size} is smaller than the corpus's "
                             f"{_vocab(corpus)} tokens; every batch would index past the embedding")
        batch = base_train.get("batch_size", TrainConfig.batch_size)
        check_memory(model, batch if isinstance(batch, int) and batch > 0 else TrainConfig.batch_size,
                     f"{source}: sizes[{i}]")
        check_groups(quantize, (model.d_model, model.mlp_ratio * model.d_model), f"{source}: quantize")
        n, fpt = non_embedding_params(model), flops_per_token(model)
        for v in values:
            tokens = int(v if kind == "tokens" else v * n if kind == "tokens_per_param" else v / fpt)
            for lr in lrs:
                for batch, seed in itertools.product(batches, seeds):
                    tr = dict(base_train, tokens=tokens)
                    if lr is not None:
                        tr["lr"] = lr
                    if batch is not None:
                        tr["batch_size"], tr["grad_accum"] = split_batch(batch, micro_max)
                    if seed is not None:
                        tr["seed"] = seed
                    where = f"{source}: train (sizes[{i}], {kind}={v:g})"
                    if tokens < 1:
                        raise InputError(f"{where}: the budget gives {tokens} training tokens; it must give >= 1")
                    check_fields(TrainConfig, tr, where)
                    check_train_ranges(tr, where)
                    train = _build(TrainConfig, tr, where)
                    run = (f"{name}/d{model.d_model}-L{model.n_layer}-h{model.n_head}/D{tokens:.3g}"
                           f"/lr{train.lr:g}{'' if batch is None else f'/B{batch}'}/s{train.seed}")
                    jobs.append(Job(run=run, group=name, model=model, train=train, corpus=corpus))
    runs = [j.run for j in jobs]
    if len(set(runs)) != len(runs):
        dup = next(r for r in runs if runs.count(r) > 1)
        raise InputError(f"{source}: two jobs share the run id {dup!r} (repeated size or budget)")
    return LadderSpec(name=name, jobs=tuple(jobs), gpus_per_job=gpus_per_job, quantize=quantize)


def _gpus_per_job(value, source: str) -> float:
    """A fraction of one GPU (several small jobs share it) or a whole number of GPUs."""
    try:
        g = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{source}: gpus_per_job: {value!r} is not a number") from None
    if not (0 < g <= 1 or (g > 1 and g.is_integer())):
        raise InputError(f"{source}: gpus_per_job: {value!r}, expected a fraction in (0, 1] or a whole number of GPUs")
    return g


def _batch_sizes(values, where: str) -> list[int]:
    out = _numbers(values, where)
    for i, v in enumerate(out):
        if v != int(v):
            raise InputError(f"{where}[{i}]: {v!r} is not a whole number of sequences")
    return [int(v) for v in out]


def split_batch(batch: int, micro_max) -> tuple[int, int]:
    """(micro-batch, accumulation) for ``batch`` sequences per step: the largest micro-batch that divides
    ``batch``, is at most ``micro_max`` and (for batch ≥ 2) at most batch/2, so every step has at least two
    micro-batches for the gradient noise scale (ladder/noise_scale.py)."""
    try:
        cap = int(micro_max)
    except (TypeError, ValueError):
        cap = TrainConfig.batch_size  # a bad train.batch_size is reported by TrainConfig itself
    cap = max(1, min(cap, batch // 2 if batch >= 2 else 1))
    micro = max(d for d in range(1, cap + 1) if batch % d == 0)
    return micro, batch // micro


def _vocab(corpus: CorpusConfig) -> int:
    if corpus.kind == "synthetic":
        return corpus.markov.vocab_size
    return 256 if corpus.tokenizer == "byte" else corpus.vocab_size


def load_spec(path: str | Path) -> LadderSpec:
    """Read a .toml, .yaml/.yml or .json spec file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such spec file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                         "save the spec as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            raise InputError(f"{path}: unknown spec type '{suffix}'; expected .toml, .yaml, .yml or .json")
    except InputError:
        raise
    except Exception as exc:  # toml/yaml/json parse errors
        raise InputError(f"{path}: cannot parse ({str(exc).splitlines()[0]})") from None
    corpus = raw.get("corpus") if isinstance(raw, dict) else None
    if isinstance(corpus, dict) and isinstance(corpus.get("paths"), str | list) and corpus["paths"]:
        # Corpus paths are relative to the spec file, so a spec and its data move together.
        paths = [corpus["paths"]] if isinstance(corpus["paths"], str) else corpus["paths"]
        if not all(isinstance(p, str) for p in paths):
            raise InputError(f"{path}: corpus: 'paths' must be a list of file names")
        raw["corpus"] = {**corpus, "paths": [str(path.parent / p) if not Path(p).is_absolute() else p for p in paths]}
    return parse_spec(raw, str(path))
