"""Files a newcomer needs to follow the README's tour: bundled runs copied out, and a tiny quantization example.

    from scalinglab.data.examples import write_gemstones, write_multipowerlaw, make_quant_example
    write_gemstones(".")              # ./cool_end.jsonl: 199 Gemstones runs (McLeish et al. 2025, MIT)
    write_multipowerlaw(".", "100")   # ./multipowerlaw_100M.csv: run, step, lr, loss of 9 curves (Luo et al. 2025)
    make_quant_example(".")           # ./example-model/ (a GPT trained here), ./calib.txt, ./valid.txt

The quantization example trains one small GPT-2-layout model (d = 64, 2 layers) on the synthetic Markov
language of the demo ladder — a few seconds on CPU — and writes calibration and validation text in that
language (tokens ``t0 … t63`` separated by spaces), so ``scalinglab quantize`` and ``evaluate`` run as
written. It has no outlier features: for method quality use a real model (docs/quantization.md).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scalinglab import data as bundled
from scalinglab.errors import InputError

MULTIPOWERLAW_MODELS = ("25", "100", "400")
EXAMPLE_MODEL = {"vocab_size": 64, "seq_len": 64, "d_model": 64, "n_layer": 2, "n_head": 2}
EXAMPLE_TRAIN = {"tokens": 120_000, "lr": 1e-2, "batch_size": 32, "n_evals": 2, "eval_seqs": 64, "precision": "fp32"}
CALIB_SEQS, VALID_SEQS = 128, 128  # windows of EXAMPLE_MODEL["seq_len"] tokens, one per line


def _target_dir(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _copy_atomic(src: Path, dst: Path) -> Path:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return dst


def write_gemstones(out: str | Path = ".") -> Path:
    """Copy the bundled Gemstones final losses to ``out/cool_end.jsonl``."""
    return _copy_atomic(bundled.path(bundled.GEMSTONES), _target_dir(out) / "cool_end.jsonl")


PTQ_CORPORA = {"synthetic": (bundled.PTQ_LADDER, "ptq_evals.csv"),
               "shakespeare": (bundled.PTQ_LADDER_SHAKESPEARE, "ptq_evals_shakespeare.csv")}


def write_ptq_ladder(out: str | Path = ".", corpus: str = "synthetic") -> Path:
    """Copy the bundled quantized evaluations of a ladder to ``out``: the 12-run synthetic one as
    ``ptq_evals.csv``, the 24-run Shakespeare one as ``ptq_evals_shakespeare.csv``."""
    if corpus not in PTQ_CORPORA:
        raise InputError(f"--corpus {corpus!r}: expected one of {', '.join(PTQ_CORPORA)}")
    src, name = PTQ_CORPORA[corpus]
    return _copy_atomic(bundled.path(src), _target_dir(out) / name)


def write_multipowerlaw(out: str | Path = ".", model: str = "100") -> Path:
    """The bundled loss curves of one model as one CSV (``run, step, lr, loss``) at ``out/multipowerlaw_<M>M.csv``."""
    import pandas as pd

    model = str(model).removesuffix("M")
    if model not in MULTIPOWERLAW_MODELS:
        raise InputError(f"--model {model!r}: expected one of {', '.join(MULTIPOWERLAW_MODELS)}")
    frames = []
    for path in sorted(bundled.path(f"multipowerlaw/csv_{model}").glob("*.csv")):
        t = pd.read_csv(path)
        t.insert(0, "run", path.stem)
        frames.append(t)
    dst = _target_dir(out) / f"multipowerlaw_{model}M.csv"
    tmp = dst.with_name(f".{dst.name}.tmp")
    pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    tmp.replace(dst)
    return dst


def synthetic_text(n_seqs: int, seq_len: int, seed: int) -> str:
    """``n_seqs`` lines of the demo's synthetic language, ``seq_len`` tokens each."""
    from scalinglab.ladder.synthetic import MarkovConfig, MarkovSource

    source = MarkovSource(MarkovConfig(vocab_size=EXAMPLE_MODEL["vocab_size"]))
    ids = source.sample(n_seqs, seq_len, np.random.default_rng(seed))
    return "".join(" ".join(f"t{i}" for i in row) + "\n" for row in ids)


def make_quant_example(out: str | Path = ".", log: Callable[[str], None] = print) -> dict[str, Path]:
    """Train the small example model into ``out/example-model`` and write ``out/calib.txt``, ``out/valid.txt``."""
    from scalinglab.ladder.data import CorpusConfig, load_corpus
    from scalinglab.ladder.model import GPTConfig
    from scalinglab.ladder.train import TrainConfig, train

    out = _target_dir(out)
    model_dir = out / "example-model"
    if model_dir.exists():
        raise InputError(f"{model_dir}: already exists; remove it or choose another --out")
    cfg, tcfg = GPTConfig(**EXAMPLE_MODEL), TrainConfig(**EXAMPLE_TRAIN)
    corpus = load_corpus(CorpusConfig(kind="synthetic"))
    log(f"training the example model (d={cfg.d_model}, {cfg.n_layer} layers, {tcfg.tokens:,} tokens; ~10 s) …")
    with tempfile.TemporaryDirectory(dir=out, prefix=".example-") as work:
        result = train(cfg, tcfg, corpus, workdir=work)
        log(f"validation loss {result.evals[-1].loss:.4f} nats (the language's floor: {corpus.floor(cfg.seq_len):.4f})")
        shutil.move(str(result.model_dir), model_dir)
    paths = {"model": model_dir}
    for name, n, seed in (("calib", CALIB_SEQS, 1), ("valid", VALID_SEQS, 2)):
        dst = out / f"{name}.txt"
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.write_text(synthetic_text(n, cfg.seq_len, seed))
        tmp.replace(dst)
        paths[name] = dst
    return paths
