"""CUDA plumbing, run on the CPU: device choice, autocast choice, compile rule, host→device transfer,
spec fields (device, gpus_per_job), the Ray resource request and the local pool's GPU sharing.
``torch.cuda.is_available`` is patched through ``ladder.device.cuda_available``."""

import sys
import types

import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.ladder import device as D
from scalinglab.ladder import executors as X
from scalinglab.ladder.model import GPTConfig
from scalinglab.ladder.spec import parse_spec
from scalinglab.ladder.train import TrainConfig, uses_bf16


@pytest.mark.parametrize(("name", "gpu", "expected"), [
    ("cpu", True, "cpu"), ("auto", False, "cpu"), ("auto", True, "cuda"), ("cuda", True, "cuda"),
], ids=["cpu-ignores-gpu", "auto-no-gpu", "auto-gpu", "cuda-gpu"])
def test_resolve_device(monkeypatch, name, gpu, expected):
    monkeypatch.setattr(D, "cuda_available", lambda: gpu)
    assert D.resolve_device(name) == expected


def test_cuda_without_gpu_and_unknown_device_are_input_errors(monkeypatch):
    monkeypatch.setattr(D, "cuda_available", lambda: False)
    with pytest.raises(InputError, match="device 'cuda'.*sees no CUDA GPU"):
        D.resolve_device("cuda")
    with pytest.raises(InputError, match="expected one of auto, cpu, cuda"):
        D.resolve_device("gpu")
    with pytest.raises(InputError, match="device 'tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(InputError, match="compile 'yes'"):
        TrainConfig(compile="yes")


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # a CUDA autocast object built on a CPU-only torch
def test_autocast_choice(monkeypatch):
    import scalinglab.hw

    # The CPU rule is this machine's measurement (hw/); pin it so the test reads the same everywhere.
    monkeypatch.setattr(scalinglab.hw, "use_bf16", lambda width: width >= 256)
    small, wide = GPTConfig(vocab_size=64, d_model=16), GPTConfig(vocab_size=64, d_model=256, n_head=4)
    assert uses_bf16("auto", small, "cuda") and not uses_bf16("auto", small, "cpu")  # GPU: bf16 at any width
    assert uses_bf16("auto", wide, "cpu") and not uses_bf16("fp32", wide, "cuda")
    ctx = D.autocast("cuda", True)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    assert not isinstance(D.autocast("cuda", False), torch.autocast)


@pytest.mark.parametrize(("mode", "device", "steps", "expected"), [
    ("auto", "cpu", 10**6, False), ("auto", "cuda", D.COMPILE_MIN_STEPS - 1, False),
    ("auto", "cuda", D.COMPILE_MIN_STEPS, True), ("on", "cpu", 1, True), ("off", "cuda", 10**6, False),
], ids=["auto-cpu", "auto-cuda-short", "auto-cuda-long", "on", "off"])
def test_compile_rule(mode, device, steps, expected):
    assert D.should_compile(mode, device, steps) is expected


def test_to_device_pins_then_copies_without_blocking():
    calls = []

    class Fake:
        def pin_memory(self):
            calls.append("pin")
            return self

        def to(self, device, non_blocking=False):
            calls.append((device, non_blocking))
            return self

    t = torch.zeros(2)
    assert D.to_device(t, "cpu") is t
    D.to_device(Fake(), "cuda")
    assert calls == ["pin", ("cuda", True)]


def _spec(**top):
    raw = {"name": "g", "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1, "branching": 3}},
           "model": {"seq_len": 16, "n_head": 1, "n_layer": 1}, "sizes": [{"d_model": 8}, {"d_model": 16}],
           "tokens": [4096, 8192], "train": {"batch_size": 8}, **top}
    return parse_spec(raw)


def test_spec_device_and_gpus_per_job():
    assert {j.train.device for j in _spec().jobs} == {"auto"} and _spec().gpus_per_job == 1.0
    spec = _spec(device="cuda", gpus_per_job=0.25)
    assert {j.train.device for j in spec.jobs} == {"cuda"} and spec.gpus_per_job == 0.25
    assert {j.train.device for j in _spec(device="cuda", train={"device": "cpu"}).jobs} == {"cpu"}
    assert _spec(gpus_per_job=2).gpus_per_job == 2
    for bad in (0, 1.5, "x", -1):
        with pytest.raises(InputError, match="gpus_per_job"):
            _spec(gpus_per_job=bad)
    with pytest.raises(InputError, match="device 'gpu'"):
        _spec(device="gpu")


def test_ray_resources_and_cuda_detection():
    assert X.ray_resources(2, False, 0.25) == {"num_cpus": 2}
    assert X.ray_resources(2, True, 0.25) == {"num_cpus": 2, "num_gpus": 0.25}
    assert X.jobs_use_cuda(["cuda"], gpus_visible=False)
    assert X.jobs_use_cuda(["auto"], gpus_visible=True) and not X.jobs_use_cuda(["auto"], gpus_visible=False)
    assert not X.jobs_use_cuda(["cpu"], gpus_visible=True)


@pytest.mark.parametrize(("device", "cluster_gpus", "expected"), [
    ("cuda", 0, {"num_cpus": 1, "num_gpus": 0.25}), ("auto", 4, {"num_cpus": 1, "num_gpus": 0.25}),
    ("auto", 0, {"num_cpus": 1}), ("cpu", 4, {"num_cpus": 1}),
], ids=["cuda", "auto-gpu-cluster", "auto-cpu-cluster", "cpu"])
def test_ray_executor_requests_gpus(monkeypatch, tmp_path, device, cluster_gpus, expected):
    asked = []
    fake = types.SimpleNamespace(
        is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 8, "GPU": cluster_gpus},
        wait=lambda refs, num_returns, timeout=None: (refs[:1], refs[1:]), get=lambda ref: {"run": ref, "status": "done"})

    def remote(**kw):
        asked.append(kw)
        return lambda fn: types.SimpleNamespace(remote=lambda job, *a: job["run"])

    fake.remote = remote
    monkeypatch.setitem(sys.modules, "ray", fake)
    spec = _spec(device=device, gpus_per_job=0.25)
    summary = X.run_ladder(spec, tmp_path / "runs.db", executor="ray", threads=1)
    assert asked == [expected] and sorted(summary.done) == sorted(j.run for j in spec.jobs)


@pytest.mark.parametrize(("gpu", "expected"), [(True, 4), (False, 2)], ids=["gpu-shared-by-4", "cpu-per-core"])
def test_local_pool_shares_a_gpu(monkeypatch, tmp_path, gpu, expected):
    seen = {}
    monkeypatch.setattr(D, "cuda_available", lambda: gpu)
    monkeypatch.setattr(X.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(X, "_local", lambda jobs, store, root, workers, threads, report, *rest: seen.update(w=workers))
    raw_sizes = [{"d_model": 8 * k} for k in (1, 2, 3)]
    spec = parse_spec({"name": "g", "corpus": {"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1,
                       "branching": 3}}, "model": {"seq_len": 16, "n_head": 1, "n_layer": 1}, "sizes": raw_sizes,
                       "tokens": [4096, 8192], "gpus_per_job": 0.25})
    X.run_ladder(spec, tmp_path / "runs.db")
    assert seen["w"] == expected


def test_train_routes_batches_and_model_through_the_device(monkeypatch):
    from scalinglab.ladder import train as T
    from scalinglab.ladder.data import CorpusConfig, load_corpus

    corpus = load_corpus(CorpusConfig.from_dict({"kind": "synthetic", "markov": {"vocab_size": 16, "order": 1,
                                                                                   "branching": 3}}))
    cfg = GPTConfig(vocab_size=16, seq_len=16, d_model=8, n_layer=1, n_head=1)
    moved, asked = [], []
    monkeypatch.setattr(T, "to_device", lambda t, device: moved.append(device) or t)
    monkeypatch.setattr(T, "resolve_device", lambda name: asked.append(name) or "cpu")
    res = T.train(cfg, TrainConfig(tokens=4 * 8 * 16, batch_size=8, n_evals=2, eval_seqs=16, device="auto"), corpus)
    assert asked == ["auto"] and len(res.evals) == 2
    assert len(moved) == 2 * 2 + 2 * 4  # 2 validation batches (x, y) + (x, y) of each of the 4 steps
    monkeypatch.undo()
    monkeypatch.setattr(D, "cuda_available", lambda: False)
    with pytest.raises(InputError, match="device 'cuda'"):
        T.train(cfg, TrainConfig(tokens=128, batch_size=8, device="cuda"), corpus)
