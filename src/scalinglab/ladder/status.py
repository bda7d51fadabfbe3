"""``scalinglab ladder status``: a one-line-per-run view of a run store (opened read-only, never changed).

A ``running`` run whose lease is stale (no heartbeat for ``LEASE_TIMEOUT_S``, or its worker process is
gone) shows as ``stale``: the next ``ladder run`` takes it over and resumes it from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["status_rows", "status_lines", "status_table"]

COLUMNS = ("run", "status", "N", "D", "evals", "tokens", "loss")


def status_rows(store_path: str | Path) -> list[dict]:
    """One dict per run: run, status (``stale`` for a dead lease), N, D target, evaluations, last tokens and loss."""
    from scalinglab.runs.lease import lease_live
    from scalinglab.runs.store import RunStore

    path = Path(store_path)
    with RunStore(path, readonly=True) as store:
        runs, metrics = store.runs(), store.metrics()
    last = metrics.groupby("run").last() if not metrics.empty else None
    rows = []
    for row in runs.itertuples():
        status = row.status
        if status == "running" and not lease_live(*(getattr(row, c, None) for c in ("owner_host", "owner_pid",
                                                                                    "heartbeat"))):
            status = "stale"
        has = last is not None and row.run in last.index
        rows.append({"run": row.run, "status": status, "N": int(row.params), "D": int(row.tokens_target),
                     "evals": int((metrics["run"] == row.run).sum()) if not metrics.empty else 0,
                     "tokens": int(last.loc[row.run, "tokens"]) if has else None,
                     "loss": float(last.loc[row.run, "loss"]) if has else None})
    return rows


def _counts(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def status_table(rows: list[dict], title: str):
    """The rows as a rich table, the counts by status as its caption."""
    from scalinglab.clikit import table

    cells = [[r["run"], r["status"], r["N"], r["D"], r["evals"], r["tokens"],
              None if r["loss"] is None else f"{r['loss']:.4f}"] for r in rows]
    t = table(COLUMNS, cells, title=title, right=COLUMNS[2:])
    t.caption, t.caption_justify = _counts(rows), "left"
    return t


def status_lines(store_path: str | Path) -> list[str]:
    """Header, one line per run (status, N, D target, evaluations, last loss), then counts by status."""
    rows = status_rows(store_path)
    if not rows:
        return [f"{Path(store_path)}: no runs"]
    width = max(len(r["run"]) for r in rows)
    lines = ["  ".join([f"{'run':<{width}}", *COLUMNS[1:]])]
    for r in rows:
        lines.append("  ".join([f"{r['run']:<{width}}", r["status"], *("-" if r[c] is None else str(r[c])
                                                                       for c in COLUMNS[2:])]))
    lines.append(_counts(rows))
    return lines
