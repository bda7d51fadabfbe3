"""Training: schedules, loss goes down, determinism given a seed, exact resume from a checkpoint."""

import math

import pytest

from scalinglab.ladder.data import CorpusConfig, load_corpus
from scalinglab.ladder.model import GPTConfig
from scalinglab.ladder.synthetic import MarkovConfig
from scalinglab.ladder.train import TrainConfig, eval_steps, lr_at, train

MODEL = GPTConfig(vocab_size=16, seq_len=16, d_model=16, n_layer=1, n_head=2)
TRAIN = TrainConfig(tokens=16 * 16 * 40, lr=1e-2, batch_size=16, n_evals=4, eval_seqs=32)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CorpusConfig(markov=MarkovConfig(vocab_size=16, order=1, branching=3)))


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules(schedule):
    cfg = TrainConfig(lr=1.0, schedule=schedule, warmup_frac=0.1, decay_frac=0.2, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0)
    if schedule == "constant":
        assert lrs[-1] == 1.0
    else:
        assert lrs[-1] == pytest.approx(0.1, abs=0.01)
    if schedule == "wsd":
        assert lrs[79] == 1.0 and lrs[80] < 1.0
    if schedule == "cosine":
        assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_eval_steps_log_spaced():
    steps = eval_steps(640, 4)
    assert steps == [10, 40, 160, 640]


def test_loss_decreases_and_deterministic(corpus):
    a = train(MODEL, TRAIN, corpus)
    b = train(MODEL, TRAIN, corpus)
    losses = [e.loss for e in a.evals]
    assert losses[-1] < losses[0] - 0.3
    assert losses == [e.loss for e in b.evals]
    c = train(MODEL, TrainConfig(**{**TRAIN.to_dict(), "seed": 1}), corpus)
    assert [e.loss for e in c.evals] != losses


def test_resume_is_exact(tmp_path, corpus):
    full = train(MODEL, TRAIN, corpus, workdir=tmp_path / "full")
    part = train(MODEL, TRAIN, corpus, workdir=tmp_path / "part", stop_after=25)
    assert part.model_dir is None and part.steps == 25
    resumed_at = []
    rest = train(MODEL, TRAIN, corpus, workdir=tmp_path / "part", on_resume=resumed_at.append)
    assert resumed_at == [25] and rest.resumed_from == 25
    assert [e.loss for e in rest.evals] == [e.loss for e in full.evals]
    import torch
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("full", "part"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical final weights


def test_bf16_trains(corpus):
    res = train(MODEL, TrainConfig(**{**TRAIN.to_dict(), "precision": "bf16"}), corpus)
    assert res.evals[-1].loss < res.evals[0].loss


def test_auto_precision_picks_bf16_from_the_measured_width():
    from tests.hw.fakes import AVX2, make_calibration

    from scalinglab.errors import InputError
    from scalinglab.hw.dispatch import injected
    from scalinglab.ladder.train import uses_bf16

    narrow = GPTConfig(vocab_size=64, seq_len=16, d_model=64, n_layer=1, n_head=2)
    wide = GPTConfig(vocab_size=64, seq_len=16, d_model=256, n_layer=1, n_head=4)
    with injected(make_calibration()):  # bf16 measured faster from width 256
        assert not uses_bf16("auto", narrow) and uses_bf16("auto", wide)
        assert uses_bf16("bf16", narrow) and not uses_bf16("fp32", wide)
    with injected(make_calibration(**AVX2)):  # bf16 measured slower at every width
        assert not uses_bf16("auto", wide) and uses_bf16("bf16", wide)
    with pytest.raises(InputError, match="precision 'fp16'"):
        TrainConfig(precision="fp16")


class _Payload:
    """A pickle whose loading creates ``marker`` (what a planted checkpoint could do with any code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickle_state_is_never_loaded(tmp_path, corpus):
    import pickle

    from scalinglab.errors import InputError

    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.is_file()  # the payload is live: unpickling it runs code

    workdir, marker = tmp_path / "run", tmp_path / "pwned"
    workdir.mkdir()
    (workdir / "state.pt").write_bytes(pickle.dumps({"model": _Payload(marker), "step": 1}))
    with pytest.raises(InputError, match=r"state\.pt: a pickle checkpoint"):
        train(MODEL, TRAIN, corpus, workdir=workdir)
    assert not marker.exists()
    assert not (workdir / "state.safetensors").exists()  # refused before any training


def test_resume_state_is_safetensors_and_validated(tmp_path, corpus):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from scalinglab.errors import InputError

    workdir = tmp_path / "run"
    train(MODEL, TRAIN, corpus, workdir=workdir, stop_after=7)
    state = workdir / "state.safetensors"
    with safe_open(str(state), framework="pt") as fh:
        meta = json.loads(fh.metadata()["scalinglab"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    assert meta["step"] == 7 and {"rng.torch", "optim.0.exp_avg", "model.wte.weight"} <= set(tensors)

    def tampered(name, new_meta=None, drop=None, **replace):
        path = tmp_path / name / "state.safetensors"
        path.parent.mkdir()
        t = {k: v for k, v in {**tensors, **replace}.items() if k != drop}
        save_file(t, str(path), metadata={"scalinglab": json.dumps(new_meta or meta)})
        return path.parent

    import torch

    cases = {
        "step": (tampered("a", {**meta, "step": 10**9}), r"'step' = 1000000000"),
        "elapsed": (tampered("b", {**meta, "elapsed": "soon"}), r"'elapsed' = 'soon'"),
        "evals": (tampered("c", {**meta, "evals": [{"step": 1}]}), r"evals\[0\] is not an object"),
        "shape": (tampered("d", **{"model.wte.weight": torch.zeros(3, 3)}), r"model tensor 'wte.weight'"),
        "missing": (tampered("e", drop="optim.0.exp_avg_sq"), r"optimizer state of parameter 0"),
        "rng": (tampered("f", drop="rng.torch"), r"'rng.torch' missing"),
    }
    for folder, message in cases.values():
        with pytest.raises(InputError, match=message):
            train(MODEL, TRAIN, corpus, workdir=folder)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "state.safetensors").write_text("not a tensor file")
    with pytest.raises(InputError, match="not a readable training state"):
        train(MODEL, TRAIN, corpus, workdir=tmp_path / "g")
