"""``scalinglab ladder status``: a one-line-per-run view of a run store (opened read-only, never changed).

A ``running`` run whose lease is stale (no heartbeat for ``LEASE_TIMEOUT_S``, or its worker process is
gone) shows as ``stale``: the next ``ladder run`` takes it over and resumes it from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["status_lines"]


def status_lines(store_path: str | Path) -> list[str]:
    """Header, one line per run (status, N, D target, evaluations, last loss), then counts by status and the
    number of quantized evaluations (rows of the store's quant_evals table, and runs they cover)."""
    from scalinglab.runs.lease import lease_live
    from scalinglab.runs.quant_evals import count_quant_evals
    from scalinglab.runs.store import RunStore

    path = Path(store_path)
    with RunStore(path, readonly=True) as store:
        runs, metrics = store.runs(), store.metrics()
        n_quant, quant_runs = count_quant_evals(store)
    if runs.empty:
        return [f"{path}: no runs"]
    last = metrics.groupby("run").last() if not metrics.empty else None
    width = max(len(r) for r in runs["run"])
    lines = [f"{'run':<{width}}  {'status':<8} {'N':>10} {'D':>10} {'evals':>5} {'tokens':>10} {'loss':>8}"]
    for row in runs.itertuples():
        status = row.status
        if status == "running" and not lease_live(*(getattr(row, c, None) for c in ("owner_host", "owner_pid",
                                                                                    "heartbeat"))):
            status = "stale"
        n_evals = int((metrics["run"] == row.run).sum()) if not metrics.empty else 0
        has = last is not None and row.run in last.index
        tokens = f"{int(last.loc[row.run, 'tokens']):>10d}" if has else f"{'-':>10}"
        loss = f"{last.loc[row.run, 'loss']:>8.4f}" if has else f"{'-':>8}"
        lines.append(f"{row.run:<{width}}  {status:<8} {int(row.params):>10d} {int(row.tokens_target):>10d} {n_evals:>5d} "
                     f"{tokens} {loss}")
    counts = runs["status"].value_counts()
    lines.append(", ".join(f"{k}: {v}" for k, v in counts.items()))
    lines.append(f"quantized evals: {n_quant} ({quant_runs} runs)")
    return lines
