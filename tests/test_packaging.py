"""The light core: without the torch stack and Ray the core commands run on bundled data, and a command that
needs an extra says which one in one line (exit 2). The metadata asks for a torch range; the exact build is
pinned in constraints.txt, which CI passes to pip.

"Without torch" is made real in a fresh interpreter: an import hook refuses torch, transformers, safetensors,
tokenizers and ray exactly as a missing package would (ModuleNotFoundError).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tests.cli_run import run

from scalinglab import extras

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "scalinglab" / "data"
EXTRA_PACKAGES = ("torch", "transformers", "safetensors", "tokenizers", "ray")
HEAVY = ("torch", "transformers", "safetensors", "tokenizers", "ray", "pandas", "scipy", "numba", "matplotlib",
         "plotly", "pyarrow")

# Runs each argv through scalinglab.cli.main in one interpreter with the extras' packages refused.
DRIVER = r"""
import contextlib, io, json, sys, traceback
blocked = set(sys.argv[1].split(","))

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
import scalinglab.cli
heavy = [m for m in json.loads(sys.argv[3]) if m in sys.modules]
results = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            scalinglab.cli.main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            code, err = "exception", io.StringIO(traceback.format_exc())
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps({"heavy_after_cli_import": heavy, "results": results}))
"""


def run_without(blocked: tuple[str, ...], commands: list[list[str]], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, ",".join(blocked), json.dumps(commands), json.dumps(HEAVY)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


CORE = [
    ["--version"],
    ["--help"],
    ["data", "gemstones"],
    ["fit", "cool_end.jsonl", "--law", "chinchilla", "--out", "fit.json", "--json"],
    ["predict", "fit.json", "--params", "7e10", "--tokens", "1.4e12", "--json"],
    ["plan", "fit.json", "--flops", "1e24", "--json"],
    ["approaches", "cool_end.jsonl", "--json"],
    ["chain", str(DATA / "olmo_ladder" / "olmo_ladder_final_checkpoints.csv"), "--columns",
     "params=N_nonembed,loss=c4_loss,task_loss:hs=hellaswag_val_5shot__bpb,acc:hs=hellaswag_val_5shot__acc",
     "--target", "acc:hs", "--via", "task_loss:hs", "--json"],
    ["hparams", str(DATA / "hparams_sweep" / "curves.csv"), "--json"],
    ["report", "cool_end.jsonl", "--fit", "fit.json", "--out", "report.html"],
    ["doctor", "--json"],
]
NEEDS_EXTRA = {
    ("ladder", "run", str(ROOT / "examples" / "ladder.yaml"), "--store", "r.db"): "ladder",
    ("ladder", "demo", "--store", "d.db"): "ladder",
    ("demo", "--out", "demo-out"): "ladder",
    ("score-tasks", "model", "t.jsonl"): "ladder",
    ("data", "quant-example"): "quant",
    ("quantize", "model", "--method", "rtn", "--calib", "c.txt", "--out", "q"): "quant",
    ("evaluate", "q", "--data", "v.txt"): "quant",
    ("bench", "int8"): "quant",
}
ONE_LINE = re.compile(r"^error: 'scalinglab ([a-z0-9 -]+)' needs the \[([a-z]+)\] extra: "
                      r"pip install 'scalinglab\[([a-z]+)\]'$")


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("core")
    got = run_without(EXTRA_PACKAGES, CORE + [list(argv) for argv in NEEDS_EXTRA], cwd)
    got["cwd"] = cwd
    return got


def test_the_cli_imports_no_heavy_package(without_torch):
    assert without_torch["heavy_after_cli_import"] == []


def test_core_commands_run_on_bundled_data_without_the_extras(without_torch):
    by = {tuple(r["argv"]): r for r in without_torch["results"]}
    for argv in CORE:
        r = by[tuple(argv)]
        assert r["code"] == 0, f"{argv}: exit {r['code']}\n{r['err'][-2000:]}"
    assert by[("--version",)]["out"].strip() == extras_version()
    fit = json.loads(by[tuple(CORE[3])]["out"])
    assert fit["law"] == "chinchilla" and 0.1 < fit["params"]["alpha"] < 1 and fit["n_points"] == 199
    pred = json.loads(by[tuple(CORE[4])]["out"])
    assert 1.5 < pred["loss"] < 3.5
    plan = json.loads(by[tuple(CORE[5])]["out"])
    assert plan["params"] * plan["tokens"] == pytest.approx(1e24 / 6, rel=0.01)
    assert set(json.loads(by[tuple(CORE[6])]["out"])) == {"approach1", "approach2"}
    assert json.loads(by[tuple(CORE[7])]["out"])["kind"] == "chain"
    assert json.loads(by[tuple(CORE[8])]["out"])["kind"] == "scalinglab-hparams"
    assert (without_torch["cwd"] / "report.html").stat().st_size > 100_000
    doctor = json.loads(by[("doctor", "--json")]["out"])
    assert doctor["capabilities"]["torch_version"] is None and "[quant]" in doctor["missing"]


def test_a_command_whose_extra_is_missing_says_which_in_one_line(without_torch):
    by = {tuple(r["argv"]): r for r in without_torch["results"]}
    for argv, extra in NEEDS_EXTRA.items():
        r = by[argv]
        assert r["code"] == 2, f"{argv}: exit {r['code']}\n{r['err'][-2000:]}"
        assert r["out"] == "" and r["err"].count("\n") == 1, r["err"]
        m = ONE_LINE.match(r["err"].strip())
        assert m, r["err"]
        command = " ".join(w for w in argv if w in {"ladder", "run", "demo", "score-tasks", "data", "quant-example",
                                                     "quantize", "evaluate", "bench", "int8"})
        assert m.groups() == (command, extra, extra), r["err"]
    assert not (without_torch["cwd"] / "demo-out").exists()  # the demo stops before its first part


def test_ladder_run_on_ray_without_ray_names_the_ray_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "ray")
    code, out, err = run(["ladder", "run", str(ROOT / "examples" / "ladder.yaml"), "--store", str(tmp_path / "r.db"),
                          "--executor", "ray"], capsys)
    assert (code, out) == (2, "")
    assert err.strip() == "error: 'scalinglab ladder run' needs the [ray] extra: pip install 'scalinglab[ray]'"
    assert not (tmp_path / "r.db").exists()


def test_a_missing_module_outside_the_extras_is_not_blamed_on_an_extra():
    assert extras.extra_for("fit", "pandas") is None
    assert extras.extra_for("ladder run", "torch.nn") == "ladder"
    assert extras.extra_for("bench int8", "transformers") == "quant"
    assert extras.extra_for("bench softmax", "torch") == "quant"
    assert extras.extra_for("bench train", "torch") == "ladder"
    assert extras.extra_for("ladder run", "ray") == "ray"
    assert extras.extra_for("something-new", "torch") == "all"
    with pytest.raises(extras.MissingExtra) as exc:
        extras.require_extra("ray", "a_module_that_is_not_installed")
    assert exc.value.extra == "ray"


def extras_version() -> str:
    from scalinglab.cli import package_version

    return package_version()


def test_version_flag_and_command_print_the_package_version(capsys):
    import scalinglab

    assert run(["--version"], capsys)[:2] == (0, scalinglab.__version__ + "\n")
    assert run(["version"], capsys)[:2] == (0, scalinglab.__version__ + "\n")


def test_metadata_asks_for_a_torch_range_and_constraints_pin_the_build():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    for name in EXTRA_PACKAGES:
        assert name not in core, f"{name} is in the core dependencies"
    opt = meta["optional-dependencies"]
    assert {"ladder", "quant", "ray", "all", "test"} <= set(opt)
    assert "torch>=2.4" in opt["ladder"] and "torch>=2.4" in opt["quant"]
    assert not any(d.startswith("torch==") for deps in opt.values() for d in deps)
    assert "scalinglab[all]" in opt["test"]
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert "torch==2.13.0" in pins
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()


# Commands that write files or narrate a pipeline rather than print results (each prints the paths it wrote),
# and ones whose results are already JSON or text that another tool owns.
NO_JSON = {"version", "demo", "report", "ladder run", "ladder demo", "data gemstones", "data multipowerlaw",
           "data quant-example", "data ptq-ladder", "quantize", "bench softmax"}


def test_every_command_that_prints_results_takes_json():
    from scalinglab.cli import _command

    def leaves(cmd, path=()):
        subs = getattr(cmd, "commands", None)
        if subs is None:
            yield " ".join(path), cmd
            return
        for name, sub in subs.items():
            yield from leaves(sub, (*path, name))

    missing = [name for name, cmd in leaves(_command()) if name not in NO_JSON
               and not any("--json" in p.opts for p in cmd.params)]
    assert missing == []


def test_json_or_tables_sends_the_tables_to_stderr(capsys):
    from scalinglab.clikit import json_or_tables

    def body():
        print("a table")
        return [{"x": 1.5, "y": float("nan")}]

    json_or_tables(True, body)
    out, err = capsys.readouterr()
    assert json.loads(out) == [{"x": 1.5, "y": None}] and err == "a table\n"
    json_or_tables(False, body)
    assert capsys.readouterr().out == "a table\n"
