"""Import cost of the core: `import scalinglab`, the CLI app, and everything `scalinglab fit` imports.

Each figure is the median of REPEATS fresh interpreters, read from ``python -X importtime`` (the
cumulative microseconds of the top-level imports the statement triggers; the interpreter's own start-up is
not counted). Side by side: the baselines a user already pays for (numpy, pandas) and what the core no
longer imports at all (torch). Target: ``import scalinglab`` and the fit path under 1 s.

    python benchmarks/import_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
TARGET_S = 1.0

STATEMENTS = {
    "import scalinglab": "import scalinglab",
    "CLI app (scalinglab --help)": "import scalinglab.cli",
    "fit command path": "import scalinglab.cli; from scalinglab.fitting.api import fit; "
                        "from scalinglab.runs.io import read_runs; from scalinglab.report.tables import print_fit; "
                        "from scalinglab.fitting.validate import parse_holdout; from scalinglab.paths import output_file",
    "predict/plan path": "import scalinglab.cli; from scalinglab.fitting.result import FitResult; "
                         "from scalinglab.planning.predict import predict; "
                         "from scalinglab.planning.compute_optimal import plan; from scalinglab.report.tables import print_plan",
}
BASELINES = {"import numpy": "import numpy", "import pandas": "import pandas", "import torch": "import torch"}
HEAVY = ("torch", "transformers", "safetensors", "tokenizers", "ray", "numba", "matplotlib", "plotly", "pyarrow")
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_seconds(stmt: str) -> tuple[float, float] | None:
    """(wall, CPU) seconds of the imports ``stmt`` triggers, or None if it fails.

    Wall: the cumulative microseconds of the top-level imports in ``-X importtime``'s report. CPU: the
    interpreter's user + system time less that of ``python -c pass`` — on a loaded machine wall time
    counts the waits for a core, CPU time does not."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        return None
    total = 0
    for line in proc.stderr.splitlines():
        m = _LINE.match(line)
        if m and m.group(3) == "":  # a top-level import: its cumulative time includes its children
            total += int(m.group(2))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return total / 1e6, cpu


def heavy_modules(stmt: str) -> list[str]:
    """Which heavy packages the statement leaves imported."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = f"{stmt}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return proc.stdout.split()


def median_of(stmt: str, repeats: int, startup_cpu: float = 0.0) -> tuple[float, float] | None:
    """Median (wall, CPU) over ``repeats`` fresh interpreters; CPU less the interpreter's own start-up."""
    times = [import_seconds(stmt) for _ in range(repeats)]
    if any(t is None for t in times):
        return None
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times) - startup_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    startup = median_of("pass", args.repeats)[1]
    print(f"python -X importtime, median of {args.repeats} fresh interpreters; {sys.executable}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'what':<30} {'wall s':>8} {'CPU s':>8}  heavy packages left imported")
    ours = {}
    for name, stmt in STATEMENTS.items():
        ours[name] = median_of(stmt, args.repeats, startup)
        wall, cpu = ours[name]
        print(f"{name:<30} {wall:>8.3f} {cpu:>8.3f}  {' '.join(heavy_modules(stmt)) or '-'}", flush=True)
    print("baselines:")
    base = {}
    for name, stmt in BASELINES.items():
        base[name] = median_of(stmt, args.repeats, startup)
        shown = "not installed" if base[name] is None else f"{base[name][0]:>8.3f} {base[name][1]:>8.3f}"
        print(f"{name:<30} {shown}", flush=True)
    fit_path = ours["fit command path"]
    if base["import torch"] is not None:
        print(f"fit path vs import torch alone: {fit_path[0] / base['import torch'][0]:.2f}× wall, "
              f"{fit_path[1] / base['import torch'][1]:.2f}× CPU")
    worst = max(ours["import scalinglab"][0], fit_path[0])
    print(f"target: import scalinglab and the fit path ≤ {TARGET_S:.1f} s wall: {'met' if worst <= TARGET_S else 'NOT met'}"
          f" ({worst:.3f} s)")


if __name__ == "__main__":
    main()
