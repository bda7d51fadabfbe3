"""Fits that scale: read + fit time from 10k to 10M rows, the same optimum, peak memory.

Run:  python benchmarks/fit_scale.py            (10k, 100k, 1M and 10M rows; ~15 min on a busy 2-core box)
      python benchmarks/fit_scale.py --quick    (10k, 100k and 1M rows)

Tables (written to a temporary folder first, not timed):

* ``chinchilla``: 12 × 20 = 240 distinct (N, D), every row its own run with fresh log-normal noise
  (σ = 0.01) on the Hoffmann et al. constants — so rows share inputs but never losses. Parquet and CSV
  (``--csv-max`` rows at most; default every size). Fitted with the full 4,500-start grid.
* ``chinchilla tiled``: the 10k table repeated (copies renamed as other runs): its optimum must be the
  10k table's, with the objective multiplied by the number of copies.
* ``tissue``: 100 learning-rate schedules × (rows / 100) logged steps of 100k-step runs (101k for 10M
  rows: every step logged) (Tissue et al. 2024 law, σ = 0.01): the same curves logged more densely as
  rows grow. 192 starts.

Each measurement runs in a fresh child process: ``read_runs(file)`` then ``fit(table, law)`` (numba
kernels loaded before the clock starts), peak memory = the child's peak resident set (VmHWM), also
shown above what the interpreter and libraries already held. Then,
untimed, the optimum is checked against the plain row-by-row objective (no design points, no
subsample): its value at our θ* (the same function, summed another way), and its own optimum polished
by scipy from our θ* and, up to 1M rows, from the generating constants. A baseline child runs the
previous path — every row a point of the compiled kernel, the search on every row — at the small sizes.

Timed children hold /tmp/scalinglab-cpu.lock (this script takes it; do not wrap it in flock); the
load average before and after each is printed, since the machine is shared.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))  # this checkout's scalinglab, in this process and (PYTHONPATH) in the children
LOCK = "/tmp/scalinglab-cpu.lock"
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
TARGETS = {1_000_000: 10.0, 10_000_000: 100.0}  # seconds for read + fit
CSV_MAX = 10_000_000  # the CSV read path (chunked, text cells with an all-number fast path) at every size
BASELINE_MAX = {"chinchilla": 100_000, "tissue": 10_000}
TRUE = {"chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "tissue": {"L0": 2.8, "A": 0.6, "alpha": 0.45, "C": 0.5}}


def cpu_name() -> str:
    """Model name and the vector extensions that matter here (from /proc/cpuinfo)."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(shown)})" if shown else name


def peak_mb() -> float:
    """This process's peak resident memory in MB: VmHWM on Linux (reset by exec, unlike ru_maxrss, which
    a child started by a big parent inherits from the fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def cpu_lock():
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- data ------------------------------------------------------------------------------------------
def chinchilla_rows(n: int, seed: int) -> pd.DataFrame:
    from scalinglab.fitting.synthetic import chinchilla_grid

    base = chinchilla_grid(12, 20, noise=0.0)
    reps = -(-n // len(base))
    idx = np.tile(np.arange(len(base)), reps)[:n]
    rng = np.random.default_rng(seed)
    loss = base["loss"].to_numpy()[idx] * np.exp(0.01 * rng.standard_normal(n))
    return pd.DataFrame({"run": pd.array(np.char.add("r", np.arange(n).astype(str)), dtype="str"),
                         "params": base["params"].to_numpy()[idx], "tokens": base["tokens"].to_numpy()[idx],
                         "loss": loss})


def write_tables(folder: Path, sizes, csv_max: int = CSV_MAX, csv_only: bool = False) -> list[dict]:
    from scalinglab.fitting.synthetic import schedule_curves

    jobs = []
    small = chinchilla_rows(sizes[0], seed=0)
    for n in sizes:
        t = small if n == sizes[0] else chinchilla_rows(n, seed=1)
        if csv_only:
            p = folder / f"chinchilla-{n}.csv"
            t.to_csv(p, index=False)
            jobs.append({"kind": "chinchilla", "format": "csv", "law": "chinchilla", "rows": n, "path": str(p)})
            continue
        p = folder / f"chinchilla-{n}.parquet"
        t.to_parquet(p)
        jobs.append({"kind": "chinchilla", "format": "parquet", "law": "chinchilla", "rows": n, "path": str(p)})
        if n <= csv_max:
            p = folder / f"chinchilla-{n}.csv"
            t.to_csv(p, index=False)
            jobs.append({"kind": "chinchilla", "format": "csv", "law": "chinchilla", "rows": n, "path": str(p)})
        if n > sizes[0]:
            copies = n // len(small)
            tiled = pd.concat([small] * copies, ignore_index=True)
            tiled["run"] = np.char.add("r", np.arange(len(tiled)).astype(str))
            p = folder / f"tiled-{n}.parquet"
            tiled.to_parquet(p)
            jobs.append({"kind": "chinchilla tiled", "format": "parquet", "law": "chinchilla", "rows": n,
                         "path": str(p), "copies": copies})
        del t
        t = schedule_curves(n_runs=100, rows_per_run=n // 100, total_steps=max(100_000, n // 100 + 1_000), seed=2)
        p = folder / f"tissue-{n}.parquet"
        t.to_parquet(p)
        jobs.append({"kind": "tissue", "format": "parquet", "law": "tissue", "rows": n, "path": str(p)})
        for kind, law in (("chinchilla", "chinchilla"), ("tissue", "tissue")):
            if n <= BASELINE_MAX[kind] and n <= sizes[1]:
                src = folder / f"{kind}-{n}.parquet"
                jobs.append({"kind": kind, "format": "parquet", "law": law, "rows": n, "path": str(src),
                             "baseline": True})
    return jobs


# ---- child -----------------------------------------------------------------------------------------
def _row_by_row_design(log_loss: np.ndarray):
    """Every row its own design point: the compiled kernel's per-row loop, as before design points."""
    from scalinglab.fitting.design import DesignPoints

    n = log_loss.size
    return DesignPoints(index=np.arange(n), start=np.arange(n + 1), y=log_loss, z=np.zeros(n), centre=log_loss,
                        counts=np.ones(n, dtype=np.int64), entry=np.arange(n))


def baseline_fit(table: pd.DataFrame, law_name: str) -> float:
    """The previous fit: the multi-start search and the polish on every row (no grouping, no subsample)."""
    from scalinglab.fitting.objective import HuberObjective
    from scalinglab.fitting.optimize import multistart
    from scalinglab.laws.registry import get_law

    law = get_law(law_name)
    x = law.prepare({c: table[c].to_numpy() for c in law.inputs})
    loss = table["loss"].to_numpy()
    design = _row_by_row_design(np.log(loss)) if law_name == "chinchilla" else None
    obj = HuberObjective(law, x, loss, group=law_name == "chinchilla", design=design)
    bounds = law.bounds()
    bounds = None if all(b == (None, None) for b in bounds) else bounds
    return multistart(obj, law.init_grid(), bounds=bounds).objective


def verify(table: pd.DataFrame, law_name: str, theta: np.ndarray, f_ours: float, from_truth: bool) -> dict:
    """The plain row-by-row objective at θ*, and its optimum polished from θ* (and from the truth)."""
    from scalinglab.fitting.objective import HuberObjective
    from scalinglab.fitting.optimize import refine
    from scalinglab.laws.registry import get_law

    law = get_law(law_name)
    x = law.prepare({c: table[c].to_numpy() for c in law.inputs})
    rows = HuberObjective(law, x, table["loss"].to_numpy(), fused=False, group=False)
    bounds = law.bounds()
    bounds = None if all(b == (None, None) for b in bounds) else bounds
    f_at = float(rows.value(theta[None, :])[0])
    refs = [refine(rows, theta, bounds=bounds)[1]]
    if from_truth:
        refs.append(refine(rows, law.from_public(TRUE[law_name]), bounds=bounds)[1])
    f_ref = min(refs)
    return {"row_sum_at_ours": f_at, "rel_same_function": abs(f_ours - f_at) / abs(f_at),
            "row_optimum": f_ref, "rel_vs_row_optimum": (f_ours - f_ref) / abs(f_ref)}


def child(job: dict) -> dict:
    from scalinglab.fitting.api import fit
    from scalinglab.fitting.synthetic import chinchilla_grid
    from scalinglab.runs.io import read_runs

    fit(chinchilla_grid(3, 4), "chinchilla")  # load the compiled kernels before the clock starts
    rss0 = peak_mb()  # interpreter + libraries
    t0, c0 = time.perf_counter(), time.process_time()
    table = read_runs(job["path"])
    t1, c1 = time.perf_counter(), time.process_time()
    out = dict(job)
    if job.get("baseline"):
        out["objective"] = baseline_fit(table, job["law"])
        t2, c2 = time.perf_counter(), time.process_time()
    else:
        result = fit(table, job["law"])
        t2, c2 = time.perf_counter(), time.process_time()
        out["objective"] = result.objective
        out["theta"] = list(result.theta)
    peak = peak_mb()
    # CPU seconds too (all threads of the child): on a shared machine wall time depends on the neighbours
    out.update(read_s=t1 - t0, fit_s=t2 - t1, read_cpu_s=c1 - c0, fit_cpu_s=c2 - c1, peak_mb=peak, data_mb=peak - rss0)
    if not job.get("baseline") and job["format"] == "parquet" and job["kind"] != "chinchilla tiled":
        out.update(verify(table, job["law"], np.array(out["theta"]), out["objective"],
                          from_truth=job["rows"] <= 1_000_000))
    return out


def run_child(job: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    with cpu_lock():
        load0 = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True,
                              text=True, env=env)
        load1 = os.getloadavg()[0]
    if proc.returncode != 0:
        raise RuntimeError(f"child failed on {job}:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = [load0, load1]
    return out


# ---- report ----------------------------------------------------------------------------------------
def report(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=240)
    small = {r["kind"]: r for r in results if r["rows"] == min(x["rows"] for x in results) and not r.get("baseline")
             and r["format"] == "parquet"}
    t = Table(title=f"read + fit on {cpu_name()}, {os.cpu_count()} cores", title_justify="left")
    for col in ("table", "rows", "read s", "fit s", "read+fit s", "×time per ×10 rows", "peak MB (above libs)", "objective",
                "rel. diff", "check", "load (1 min)"):
        t.add_column(col, justify="right")
    previous: dict = {}
    for r in results:
        label = r["kind"] + ("" if r["format"] == "parquet" else f" ({r['format']})") + \
            (" — baseline: previous path" if r.get("baseline") else "")
        total = r["read_s"] + r["fit_s"]
        key = (r["kind"], r["format"], bool(r.get("baseline")))
        growth = f"{total / previous[key]:.1f}×" if key in previous else ""
        previous[key] = total
        if r["kind"] == "chinchilla tiled":
            ref = small["chinchilla"]["objective"] * r["copies"]
            rel, check = (r["objective"] - ref) / ref, "vs 10k fit × copies"
        elif "rel_vs_row_optimum" in r:
            rel, check = r["rel_vs_row_optimum"], f"vs row-by-row optimum (same fn: {r['rel_same_function']:.0e})"
        else:
            rel, check = float("nan"), ""
        target = TARGETS.get(r["rows"])
        verdict = "" if target is None or r.get("baseline") else (" ✓" if total <= target else f" ✗ (> {target:.0f} s)")
        t.add_row(label, f"{r['rows']:,}", f"{r['read_s']:.2f}", f"{r['fit_s']:.2f}", f"{total:.2f}{verdict}",
                  growth, f"{r['peak_mb']:.0f} ({r['data_mb']:.0f})", f"{r['objective']:.10g}", f"{rel:+.1e}", check,
                  f"{r['load'][0]:.1f} → {r['load'][1]:.1f}")
    console.print(t)
    for kind in ("chinchilla", "tissue"):
        base = [r for r in results if r.get("baseline") and r["kind"] == kind]
        for b in base:
            ours = next(r for r in results if r["kind"] == kind and r["rows"] == b["rows"] and r["format"] == "parquet"
                        and not r.get("baseline"))
            console.print(f"{kind} {b['rows']:,} rows: previous path {b['fit_s']:.2f} s, ours {ours['fit_s']:.2f} s "
                          f"(×{b['fit_s'] / ours['fit_s']:.1f}); objectives {b['objective']:.12g} vs "
                          f"{ours['objective']:.12g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="up to 1M rows")
    ap.add_argument("--sizes", type=str, default="", help="comma-separated row counts (overrides --quick)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--csv-max", type=int, default=CSV_MAX, help="largest table also written and read as CSV")
    ap.add_argument("--csv-only", action="store_true", help="only the CSV read path (chinchilla CSV tables)")
    ap.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (SIZES[:3] if args.quick else SIZES)
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; load average {os.getloadavg()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="fit-scale-") as tmp:
        t0 = time.perf_counter()
        jobs = write_tables(Path(tmp), sizes, args.csv_max, args.csv_only)
        print(f"tables written in {time.perf_counter() - t0:.0f} s", flush=True)
        for job in jobs:
            r = run_child(job)
            results.append(r)
            print(f"  {r['kind']:<17} {r['format']:<7} {r['rows']:>10,} rows"
                  f"{' (baseline)' if r.get('baseline') else '':<11} read {r['read_s']:7.2f} s  fit {r['fit_s']:7.2f} s"
                  f"  peak {r['peak_mb']:7.0f} MB (+{r['data_mb']:.0f})  load {r['load'][0]:.1f}", flush=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
