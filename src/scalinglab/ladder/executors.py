"""Run a ladder's jobs: in a local process pool (default) or on a Ray cluster, recording into the store.

    from scalinglab.ladder.executors import run_ladder
    summary = run_ladder(load_spec("ladder.yaml"), "runs.db")                     # local pool
    summary = run_ladder(spec, "runs.db", executor="ray", address="auto")         # Ray

Every job is registered in the store first. Jobs already ``done`` are skipped; the others run
:func:`run_job`, which trains with a checkpoint directory ``<root>/<run>/`` (root defaults to
``<store stem>-runs/`` beside the store): an interrupted job resumes from its last checkpoint and
forgets the evaluations recorded after it. Workers write their own metrics (SQLite WAL, short
transactions), so a kill -9 of anything loses at most the steps since a job's last checkpoint.

Local pool: ``workers`` processes (default: one per core) of ``threads`` torch threads each (default
cores // workers); small models train faster as independent processes than as one multi-threaded one.
Jobs start largest-first so the pool drains evenly. A worker stops (checkpointing) when its parent dies.
Ray: one task per job with ``num_cpus=threads``; the store and checkpoint root must be on a filesystem
every Ray node sees (true for a local Ray instance).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.errors import InputError
from scalinglab.ladder.spec import Job, LadderSpec

__all__ = ["run_ladder", "run_job", "register_jobs", "default_root", "LadderSummary", "EXECUTORS", "printer"]

EXECUTORS = ("local", "ray")
_CORPORA: dict = {}  # per-process cache: a worker runs many jobs on one corpus


@dataclass
class LadderSummary:
    done: list[str] = field(default_factory=list)  # finished in this call
    skipped: list[str] = field(default_factory=list)  # already done before
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


def run_job(job: dict, store_path: str, root: str, threads: int | None = None, parent_pid: int | None = None) -> dict:
    """Train one job (a :meth:`Job.to_dict`) unless the store says it is done; returns a small summary."""
    import torch

    from scalinglab.ladder.data import load_corpus
    from scalinglab.ladder.train import train
    from scalinglab.runs.store import RunStore

    if threads:
        torch.set_num_threads(threads)
    j = Job.from_dict(job)
    t0 = time.perf_counter()
    with RunStore(store_path) as store:
        row = store.get(j.run)
        if row is not None and row["status"] == "done":
            return {"run": j.run, "status": "skipped"}
        store.update(j.run, status="running", error=None)
        workdir = _workdir(Path(root), j.run)
        try:
            if j.corpus not in _CORPORA:
                _CORPORA[j.corpus] = load_corpus(j.corpus)
            orphaned = (lambda: os.getppid() != parent_pid) if parent_pid else None
            res = train(j.model, j.train, _CORPORA[j.corpus], workdir=workdir,
                        on_eval=lambda ev: _record(store, j.run, ev),
                        on_resume=lambda step: _resumed(store, j.run, step), should_stop=orphaned)
        except Exception as exc:
            store.update(j.run, status="failed", error=f"{type(exc).__name__}: {exc}")
            return {"run": j.run, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        if res.model_dir is None:  # stopped early (parent gone): leave it resumable
            return {"run": j.run, "status": "stopped"}
        store.update(j.run, status="done", checkpoint=str(workdir / "state.pt"), model_dir=str(res.model_dir))
    return {"run": j.run, "status": "done", "loss": res.evals[-1].loss, "seconds": time.perf_counter() - t0}


def _record(store, run: str, ev) -> None:
    store.add_metric(run, ev.step, ev.tokens, ev.flops, ev.loss, ev.train_loss, ev.lr, ev.elapsed)
    if ev.noise_scale is not None:
        store.add_noise_scale(run, ev.step, ev.noise_scale)


def _resumed(store, run: str, step: int) -> None:
    store.drop_metrics_after(run, step)
    store.update(run, resumed_step=step)


def _init_worker() -> None:
    # Workers must not inherit a parent's interrupt handling: Ctrl-C is the driver's to handle.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _local(pending: list[dict], store_path: str, root: str, workers: int, threads: int, report) -> None:
    import multiprocessing as mp

    if workers == 1:
        for job in pending:
            report(run_job(job, store_path, root, threads))
        return
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(run_job, job, store_path, root, threads, os.getpid()) for job in pending}
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in finished:
                report(f.result())


def _ray(pending: list[dict], store_path: str, root: str, threads: int, address: str | None, report) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'scalinglab[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    remote = ray.remote(num_cpus=threads)(run_job)
    refs = [remote.remote(job, store_path, root, threads) for job in pending]
    while refs:
        finished, refs = ray.wait(refs, num_returns=1)
        for r in finished:
            report(ray.get(r))


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
    workers = max(1, min(workers or cores, len(spec.jobs) or 1))
    threads = threads or max(1, cores // workers)
    summary = LadderSummary()
    t0 = time.perf_counter()
    with RunStore(store_path) as store:
        register_jobs(spec.jobs, store)
        status = {j.run: store.get(j.run)["status"] for j in spec.jobs}
    summary.skipped = [r for r, s in status.items() if s == "done"]
    # Largest compute first: the long jobs start early and the short ones fill in the gaps.
    pending = sorted((j for j in spec.jobs if status[j.run] != "done"),
                     key=lambda j: -flops_per_token(j.model) * j.train.tokens)
    n = len(pending)

    def report(result: dict) -> None:
        if result["status"] == "done":
            summary.done.append(result["run"])
        elif result["status"] == "failed":
            summary.failed[result["run"]] = result["error"]
        if on_result is not None:
            on_result(result, len(summary.done) + len(summary.failed), n)

    jobs = [j.to_dict() for j in pending]
    if executor == "local":
        _local(jobs, str(store_path), str(root), workers, threads, report)
    else:
        _ray(jobs, str(store_path), str(root), threads, address, report)
    summary.seconds = time.perf_counter() - t0
    return summary


def printer(n_jobs: int) -> Callable[[dict, int, int], None]:
    """A progress callback for :func:`run_ladder` that prints one line per finished job."""
    t0 = time.perf_counter()

    def show(result: dict, finished: int, pending: int) -> None:
        what = f"loss {result['loss']:.4f}" if "loss" in result else result.get("error", result["status"])
        print(f"[{finished}/{pending}] {time.perf_counter() - t0:6.0f}s  {result['run']}  {what}", flush=True)

    return show
