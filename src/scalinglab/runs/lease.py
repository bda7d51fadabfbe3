"""Leases on runs in the store: who owns a ``running`` run, and when that claim has lapsed.

A worker owns a run as (host name, process id) and renews a heartbeat time every ``HEARTBEAT_S``
(:class:`scalinglab.ladder.worker.Lease`). A lease is live while its heartbeat is younger than
``LEASE_TIMEOUT_S`` and, when the owner is on this host, its process still runs (a zombie does not
count): a worker killed on this machine frees its run at once, one on another machine after the timeout.
The transactions that take, renew and end a lease are :meth:`scalinglab.runs.store.RunStore.claim`,
``heartbeat`` and ``release``.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

__all__ = ["HEARTBEAT_S", "LEASE_TIMEOUT_S", "this_owner", "lease_live"]

HEARTBEAT_S = 2.0  # a training worker renews its lease this often
LEASE_TIMEOUT_S = 30.0  # a lease not renewed for this long may be taken over (15 missed heartbeats)


def this_owner() -> tuple[str, int]:
    """The lease owner this process claims as: (host name, process id)."""
    return socket.gethostname(), os.getpid()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    try:  # a zombie (killed, not yet reaped) holds its pid but runs nothing
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


def lease_live(owner_host, owner_pid, heartbeat, now: float | None = None) -> bool:
    """Whether a ``running`` row's lease still holds: renewed within LEASE_TIMEOUT_S by a live owner."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (owner_host, owner_pid, heartbeat)):
        return False
    if (time.time() if now is None else now) - float(heartbeat) > LEASE_TIMEOUT_S:
        return False
    return owner_host != socket.gethostname() or _process_alive(int(owner_pid))
