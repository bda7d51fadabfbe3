"""The quantization step of a finished ladder run: every ``quantize:`` config not yet in the store, one row each.

    from scalinglab.ladder.quant_runs import missing_quant, quantize_run
    todo = missing_quant(store, run, spec.quantize)          # configs without a stored row
    n = quantize_run(store, run, spec.quantize, corpus)       # computes and stores them; returns how many

The run's final model (``model_dir``, written when training ended) is loaded and evaluated in fp32 on the
held-out batches of its final evaluation — the same corpus, sequence length, batch size and number of
sequences (:meth:`Corpus.val_batches`), so ``loss_float`` is the run's final validation loss recomputed in
fp32 and every quantized loss is measured on exactly those tokens. Calibrating methods (smoothquant,
outliertune, llm.int8) get ``CALIB_SEQS`` sequences drawn from the training distribution under a seed of
their own.

Crash safety: each row is committed as soon as it is computed (:func:`add_quant_eval`), and a run is
marked ``done`` before its quantization starts, so a kill at any moment keeps the training and every
finished row; the next ``ladder run`` finds the missing rows (:func:`missing_quant`) and computes only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.ladder.autoquant import QuantSpec

__all__ = ["missing_quant", "quantize_run", "CALIB_SEQS", "CALIB_SEED"]

CALIB_SEQS = 64  # SmoothQuant/OutlierTune statistics: a few thousand tokens of the training distribution
CALIB_SEED = 2**31 - 2  # its own stream, apart from the training seeds and the validation seed


def missing_quant(store, run: str, specs: Sequence[QuantSpec]) -> list[QuantSpec]:
    """The configs of ``specs`` that have no row for ``run`` yet."""
    from scalinglab.runs.quant_evals import quant_keys

    have = quant_keys(store, run) if specs else set()
    return [s for s in specs if s.key not in have]


def quantize_run(store, run: str, specs: Sequence[QuantSpec], corpus=None, on_row=None) -> int:
    """Quantize the finished ``run`` with every config of ``specs`` not yet stored; returns the rows written.

    ``corpus``: the run's loaded corpus (loaded from its config when None). ``on_row(spec, result)`` is
    called after each row is committed.
    """
    from scalinglab.ladder.autoquant import quantize_and_evaluate
    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.hf import load_model
    from scalinglab.ladder.spec import Job
    from scalinglab.ladder.train import evaluate
    from scalinglab.runs.quant_evals import add_quant_eval

    todo = missing_quant(store, run, specs)
    if not todo:
        return 0
    row = store.get(run)
    if row is None or row["status"] != "done":
        raise InputError(f"{store.path}: run {run!r} is not finished; only a finished run's model is quantized")
    if not row["model_dir"] or not Path(row["model_dir"]).is_dir():
        raise InputError(f"{store.path}: run {run!r}: its final model folder {row['model_dir']!r} is missing; "
                         "train the run again to quantize it")
    job = Job.from_dict(row["config"])
    corpus = corpus if corpus is not None else load_corpus(job.corpus)
    model = load_model(row["model_dir"]).cpu().eval()
    T = job.model.seq_len
    val = corpus.val_batches(T, job.train.batch_size, job.train.eval_seqs)  # as train() evaluates the run
    loss_float = evaluate(model, val, "fp32", "cpu")
    calib = []
    if any(not s.weight_only for s in todo):
        calib = [corpus.train_batch(i, min(CALIB_SEQS, job.train.batch_size), T, CALIB_SEED)[0]
                 for i in range(max(1, CALIB_SEQS // job.train.batch_size))]
    written = 0
    for spec in todo:
        result = quantize_and_evaluate(model, spec, val, calib)
        written += add_quant_eval(store, run, spec.key, spec.to_dict(), result.loss, loss_float, result.weight_bytes)
        if on_row is not None:
            on_row(spec, result)
    return written
