"""Run a ladder's jobs: in a local process pool (default) or on a Ray cluster, recording into the store.

    from scalinglab.ladder.executors import run_ladder
    summary = run_ladder(load_spec("ladder.yaml"), "runs.db")                     # local pool
    summary = run_ladder(spec, "runs.db", executor="ray", address="auto")         # Ray

Every job is registered in the store first. Jobs already ``done`` are skipped; the others run
:func:`run_job`, which claims the run's lease in the store (:meth:`RunStore.claim`) and trains with a
checkpoint directory ``<root>/<run>/`` (root defaults to ``<store stem>-runs/`` beside the store): an
interrupted job resumes from its last checkpoint and forgets the evaluations recorded after it. Workers
write their own metrics (SQLite WAL, short transactions), so a kill -9 of anything loses at most the steps
since a job's last checkpoint.

A spec with ``quantize:`` configs quantizes each run's final model once it is ``done``
(:mod:`scalinglab.ladder.quant_runs`), one committed store row per config; a run already done whose rows
are incomplete (its quantization was killed, or configs were added to the spec) is submitted again for the
missing rows only, without training.

Several runners on one store share the work: a job whose run another runner holds (a live lease) waits
until that run is done, or until its lease goes stale (the other runner died), and then takes it over.
Every job is trained by exactly one worker at a time.

Local pool: ``workers`` processes (default: one per core) of ``threads`` torch threads each (default
cores // workers); small models train faster as independent processes than as one multi-threaded one.
Jobs start largest-first so the pool drains evenly. Workers die with their parent, even after a kill -9
(:mod:`scalinglab.ladder.worker`): the running job checkpoints and its run goes back to ``pending``.
Ray: one task per job with ``num_cpus=threads``, and ``num_gpus=gpus_per_job`` (the spec's, default 1)
when the jobs train on CUDA: ``device: cuda``, or ``auto`` on a cluster that has GPUs; ``gpus_per_job:
0.25`` packs four small jobs onto one GPU. The store and checkpoint root must be on a filesystem every
Ray node sees (true for a local Ray instance). Local pool on CUDA: ``1 / gpus_per_job`` workers share
the (first) GPU unless ``workers`` says otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.ladder.autoquant import QuantSpec
from scalinglab.ladder.spec import Job, LadderSpec
from scalinglab.ladder.worker import Lease, init_worker, job_running, parent_gone

__all__ = ["run_ladder", "run_job", "register_jobs", "default_root", "LadderSummary", "EXECUTORS", "printer",
           "ray_resources", "jobs_use_cuda"]

EXECUTORS = ("local", "ray")
POLL_S = 1.0  # how often a runner looks at runs another runner holds
_CORPORA: dict = {}  # per-process cache: a worker runs many jobs on one corpus


@dataclass
class LadderSummary:
    done: list[str] = field(default_factory=list)  # finished in this call
    skipped: list[str] = field(default_factory=list)  # already done before
    elsewhere: list[str] = field(default_factory=list)  # finished meanwhile by another runner on the store
    quantized: list[str] = field(default_factory=list)  # already trained: only their missing quant rows computed
    quant_evals: int = 0  # quantized evaluations written in this call
    failed: dict[str, str] = field(default_factory=dict)  # run → error
    seconds: float = 0.0


def default_root(store_path: str | Path) -> Path:
    p = Path(store_path)
    return p.with_name(p.stem + "-runs")


def _workdir(root: Path, run: str) -> Path:
    return root / run.replace("/", "__")


def register_jobs(jobs, store) -> None:
    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.flops import flops_per_token, non_embedding_params, total_params

    floors = {}
    for job in jobs:
        if job.corpus not in floors and job.corpus.kind == "synthetic":
            floors[job.corpus] = load_corpus(job.corpus).floor
        floor = floors[job.corpus](job.model.seq_len) if job.corpus in floors else None
        store.register(job.run, group=job.group, config=job.to_dict(), params=non_embedding_params(job.model),
                       params_total=total_params(job.model), flops_per_token=flops_per_token(job.model),
                       tokens_target=job.train.tokens, lr=job.train.lr, batch_size=job.train.batch_size * job.train.grad_accum,
                       seq_len=job.model.seq_len, seed=job.train.seed, floor=floor)


def run_job(job: dict, store_path: str, root: str, threads: int | None = None, quantize: tuple[dict, ...] = ()) -> dict:
    """Train one job (a :meth:`Job.to_dict`) under a lease in the store, then quantize its final model with
    each ``quantize`` config (a :meth:`QuantSpec.to_dict`) that has no stored row yet; returns a small
    summary whose ``status`` is done, quantized (already trained: only quant rows computed), failed, skipped
    (already done), held (another runner holds its lease) or stopped (the parent died: checkpointed and
    handed back as pending); ``quant_evals`` counts the rows written."""
    import torch

    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.train import STATE, train
    from scalinglab.runs.store import RunStore

    if threads:
        torch.set_num_threads(threads)
    j = Job.from_dict(job)
    if parent_gone():  # a job still queued when the parent died: leave it pending
        return {"run": j.run, "status": "stopped"}
    specs = tuple(QuantSpec(**q) for q in quantize)
    t0 = time.perf_counter()
    with RunStore(store_path) as store, job_running():
        outcome = store.claim(j.run)
        if outcome == "done" and specs:
            return _quantize(store, j, specs, {"run": j.run, "status": "quantized"})
        if outcome != "claimed":
            return {"run": j.run, "status": "skipped" if outcome == "done" else "held"}
        workdir = _workdir(Path(root), j.run)
        with Lease(store_path, j.run) as lease:
            try:
                if j.corpus not in _CORPORA:
                    _CORPORA[j.corpus] = load_corpus(j.corpus)
                res = train(j.model, j.train, _CORPORA[j.corpus], workdir=workdir,
                            on_eval=lambda ev: _record(store, j.run, ev),
                            on_resume=lambda step: _resumed(store, j.run, step),
                            should_stop=lambda: parent_gone() or lease.lost.is_set())
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                store.release(j.run, "failed", error=error)
                return {"run": j.run, "status": "failed", "error": error}
        if res.model_dir is None:  # stopped early (parent gone or lease lost): leave it resumable
            released = store.release(j.run, "pending")
            return {"run": j.run, "status": "stopped" if released else "held"}
        if not store.release(j.run, "done", checkpoint=str(workdir / STATE), model_dir=str(res.model_dir)):
            return {"run": j.run, "status": "held"}  # the lease was taken over meanwhile: its new owner finishes
        result = {"run": j.run, "status": "done", "loss": res.evals[-1].loss, "seconds": time.perf_counter() - t0}
        # Done first, then quantized: a kill from here on keeps the training, and the next run adds the rows.
        return _quantize(store, j, specs, result) if specs else result


def _quantize(store, job: Job, specs: tuple, result: dict) -> dict:
    """Compute the run's missing quant rows; a failure leaves the run done and its rows for the next call."""
    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.quant_runs import quantize_run

    try:
        if job.corpus not in _CORPORA:
            _CORPORA[job.corpus] = load_corpus(job.corpus)
        result["quant_evals"] = quantize_run(store, job.run, specs, _CORPORA[job.corpus])
    except Exception as exc:
        return {"run": job.run, "status": "failed", "error": f"quantization: {type(exc).__name__}: {exc}"}
    return result


def _record(store, run: str, ev) -> None:
    store.add_metric(run, ev.step, ev.tokens, ev.flops, ev.loss, ev.train_loss, ev.lr, ev.elapsed)
    if ev.noise_scale is not None:
        store.add_noise_scale(run, ev.step, ev.noise_scale)


def _resumed(store, run: str, step: int) -> None:
    store.drop_metrics_after(run, step)
    store.update(run, resumed_step=step)


class _Inline:
    """Runs jobs in this process, one per call of :meth:`finished` (one worker: no pool to start)."""

    def __init__(self, fn):
        self.fn, self.jobs, self.n = fn, {}, 0

    def submit(self, job: dict) -> int:
        self.n += 1
        self.jobs[self.n] = job
        return self.n

    def finished(self, handles: list, timeout: float | None) -> list[tuple]:
        first = min(handles)
        return [(first, self.fn(self.jobs.pop(first)))]


def _drive(jobs: list[dict], submit, finished, store_path: str, report) -> None:
    """Submit every job; a job another runner holds waits until its run is done (then it is reported as
    done elsewhere) or its lease goes stale (then it is submitted again and resumes from its checkpoint)."""
    from scalinglab.runs.store import RunStore

    inflight = {submit(job): job for job in jobs}
    waiting: dict[str, dict] = {}
    with RunStore(store_path) as store:
        while inflight or waiting:
            if inflight:
                for handle, result in finished(list(inflight), POLL_S if waiting else None):
                    job = inflight.pop(handle)
                    if result["status"] == "held":
                        waiting[result["run"]] = job
                    else:
                        report(result)
            else:
                time.sleep(POLL_S)
            for run, job in list(waiting.items()):
                state = store.lease_state(run)
                if state == "done":
                    report({"run": run, "status": "elsewhere"})
                elif state == "free":
                    inflight[submit(job)] = job
                if state != "held":
                    del waiting[run]


def _local(jobs: list[dict], store_path: str, root: str, workers: int, threads: int, report,
           quantize: tuple[dict, ...] = ()) -> None:
    import multiprocessing as mp
    from functools import partial

    fn = partial(run_job, store_path=store_path, root=root, threads=threads, quantize=quantize)
    if workers == 1:
        inline = _Inline(fn)
        _drive(jobs, inline.submit, inline.finished, store_path, report)
        return

    def finished(handles, timeout):
        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return [(f, f.result()) for f in done]

    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                             initargs=(os.getpid(),)) as pool:
        _drive(jobs, lambda job: pool.submit(fn, job), finished, store_path, report)


def jobs_use_cuda(devices, gpus_visible: bool) -> bool:
    """Whether jobs with these ``train.device`` settings train on CUDA where ``gpus_visible`` says GPUs are."""
    devices = set(devices)
    return "cuda" in devices or ("auto" in devices and gpus_visible)


def ray_resources(threads: int, on_cuda: bool, gpus_per_job: float) -> dict:
    """The resources one Ray task asks for: ``threads`` CPUs, plus ``gpus_per_job`` GPUs when on CUDA."""
    res = {"num_cpus": threads}
    if on_cuda:
        res["num_gpus"] = gpus_per_job
    return res


def _ray(jobs: list[dict], store_path: str, root: str, threads: int, address: str | None, report,
         gpus_per_job: float = 1.0, quantize: tuple[dict, ...] = ()) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'scalinglab[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    on_cuda = jobs_use_cuda((j["train"].get("device", "auto") for j in jobs),
                            ray.cluster_resources().get("GPU", 0) > 0)
    remote = ray.remote(**ray_resources(threads, on_cuda, gpus_per_job))(run_job)

    def finished(refs, timeout):
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        return [(r, ray.get(r)) for r in ready]

    _drive(jobs, lambda job: remote.remote(job, store_path, root, threads, quantize), finished, store_path, report)


def run_ladder(spec: LadderSpec, store_path: str | Path, root: str | Path | None = None, executor: str = "local",
               workers: int | None = None, threads: int | None = None, address: str | None = None,
               on_result: Callable[[dict, int, int], None] | None = None) -> LadderSummary:
    """Register and run every job of ``spec``; ``on_result(result, n_finished, n_pending)`` reports progress."""
    from scalinglab.ladder.flops import flops_per_token
    from scalinglab.runs.store import RunStore

    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    store_path = Path(store_path).resolve()
    root = Path(root).resolve() if root is not None else default_root(store_path).resolve()
    cores = os.cpu_count() or 1
    if workers is None and executor == "local":
        from scalinglab.ladder.device import cuda_available

        if jobs_use_cuda((j.train.device for j in spec.jobs), cuda_available()):
            workers = max(1, int(1 / spec.gpus_per_job))  # that many jobs share the GPU
    workers = max(1, min(workers or cores, len(spec.jobs) or 1))
    threads = threads or max(1, cores // workers)
    summary = LadderSummary()
    t0 = time.perf_counter()
    with RunStore(store_path) as store:
        register_jobs(spec.jobs, store)
        status = {j.run: store.get(j.run)["status"] for j in spec.jobs}
        if spec.quantize:
            from scalinglab.ladder.quant_runs import missing_quant

            # A finished run with missing quant rows runs again for those rows only (no training).
            status = {r: "quantize" if s == "done" and missing_quant(store, r, spec.quantize) else s
                      for r, s in status.items()}
    summary.skipped = [r for r, s in status.items() if s == "done"]
    # Largest compute first: the long jobs start early and the short ones fill in the gaps.
    pending = sorted((j for j in spec.jobs if status[j.run] != "done"),
                     key=lambda j: -flops_per_token(j.model) * j.train.tokens)
    n = len(pending)

    def report(result: dict) -> None:
        summary.quant_evals += result.get("quant_evals", 0)
        if result["status"] == "done":
            summary.done.append(result["run"])
        elif result["status"] == "quantized":
            summary.quantized.append(result["run"])
        elif result["status"] in ("elsewhere", "skipped"):
            summary.elsewhere.append(result["run"])
        elif result["status"] == "failed":
            summary.failed[result["run"]] = result["error"]
        if on_result is not None:
            on_result(result, len(summary.done) + len(summary.quantized) + len(summary.elsewhere) + len(summary.failed), n)

    jobs = [j.to_dict() for j in pending]
    quantize = tuple(q.to_dict() for q in spec.quantize)
    if executor == "local":
        _local(jobs, str(store_path), str(root), workers, threads, report, quantize)
    else:
        _ray(jobs, str(store_path), str(root), threads, address, report, spec.gpus_per_job, quantize)
    summary.seconds = time.perf_counter() - t0
    return summary


def printer(n_jobs: int) -> Callable[[dict, int, int], None]:
    """A progress callback for :func:`run_ladder` that prints one line per finished job."""
    t0 = time.perf_counter()

    def show(result: dict, finished: int, pending: int) -> None:
        what = f"loss {result['loss']:.4f}" if "loss" in result else result.get("error", result["status"])
        if result.get("quant_evals"):
            what += f", {result['quant_evals']} quant evals"
        if result["status"] in ("elsewhere", "skipped"):
            what = "done by another runner"
        print(f"[{finished}/{pending}] {time.perf_counter() - t0:6.0f}s  {result['run']}  {what}", flush=True)

    return show
