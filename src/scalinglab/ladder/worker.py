"""The life of a ladder worker process: it dies with its parent, and it trains a run only under a lease.

    init_worker(parent_pid)          # process-pool initializer: ignore Ctrl-C, watch the parent
    with Lease(store_path, run) as lease:
        train(..., should_stop=lambda: parent_gone() or lease.lost.is_set())

Parent-death watch. A pool worker outlives a parent killed with SIGKILL (nothing tells it), and would go
on taking queued jobs. A daemon thread polls ``os.getppid()`` every ``WATCH_POLL_S``; once the parent is
gone it raises the :func:`parent_gone` flag, which the trainer polls every step (it checkpoints and
returns, and the run is handed back as ``pending``), waits up to ``GRACE_S`` for that, then ends the
process with ``os._exit``. With every worker gone, multiprocessing's resource tracker reads end-of-file on
its pipe and exits too. Polling works on every OS, unlike Linux's ``PR_SET_PDEATHSIG``, and leaves the
running job time to checkpoint.

Lease. While a run trains, a second thread renews its lease in the store every ``HEARTBEAT_S`` through its
own connection; if a renewal finds that the lease has been taken over (it went stale, e.g. the machine
stalled), ``lost`` is set and the trainer stops.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from scalinglab.runs.lease import HEARTBEAT_S, this_owner
from scalinglab.runs.store import RunStore

__all__ = ["init_worker", "parent_gone", "job_running", "Lease", "WATCH_POLL_S", "GRACE_S"]

WATCH_POLL_S = 0.2  # parent-death poll period
GRACE_S = 3.0  # after the parent died: how long a running job may take to checkpoint before the process ends

_PARENT_GONE = threading.Event()
_IDLE = threading.Event()
_IDLE.set()


def parent_gone() -> bool:
    """Whether this worker's parent has died (always False outside a watched worker)."""
    return _PARENT_GONE.is_set()


def init_worker(parent_pid: int) -> None:
    """Process-pool initializer: Ctrl-C is the driver's to handle; die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_POLL_S)
    _PARENT_GONE.set()
    _IDLE.wait(GRACE_S)  # a running job sees the flag at its next step, checkpoints and hands its run back
    os._exit(0)


class job_running:  # noqa: N801 (used as a context manager, like a function)
    """Marks the worker busy, so the parent-death watch waits (up to GRACE_S) for the job to finish."""

    def __enter__(self) -> None:
        _IDLE.clear()

    def __exit__(self, *exc) -> None:
        _IDLE.set()


class Lease:
    """Renews this process's lease on ``run`` every HEARTBEAT_S in a background thread."""

    def __init__(self, store_path: str | Path, run: str, interval_s: float = HEARTBEAT_S):
        self.store_path, self.run, self.interval_s = store_path, run, interval_s
        self.owner = this_owner()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        with RunStore(self.store_path) as store:  # sqlite connections are per thread
            while not self._stop.wait(self.interval_s):
                try:
                    held = store.heartbeat(self.run, self.owner)
                except Exception:  # a busy store (lock timeout): try again at the next beat
                    continue
                if not held:
                    self.lost.set()
                    return
