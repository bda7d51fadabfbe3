"""Every command of README's tour runs as written, in order, in an empty folder (a fresh clone's state).

The commands are read from README.md itself: the ```bash and ```python blocks between "## A tour" and
the next "## " heading. Shell lines must be `scalinglab …` commands; they run in this process through
the CLI app (the same code the `scalinglab` entry point calls), Python blocks through `exec`. The
folder holds only what a clone has that the tour reads (``examples/``), so a command that needs a file
an earlier command did not write fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalinglab.cli import app

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.M | re.S)


def tour_blocks(readme: str) -> list[tuple[str, str]]:
    start = readme.index("\n## A tour")
    end = readme.index("\n## ", start + 1)
    return [(lang, body) for lang, body in BLOCK.findall(readme[start:end])]


def shell_commands(body: str) -> list[list[str]]:
    out = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def test_the_tour_is_parsed_from_readme():
    blocks = tour_blocks((ROOT / "README.md").read_text())
    commands = [c for lang, body in blocks if lang == "bash" for c in shell_commands(body)]
    assert len(commands) >= 15 and {lang for lang, _ in blocks} == {"bash", "python"}
    assert all(c[0] == "scalinglab" for c in commands), [c for c in commands if c[0] != "scalinglab"]
    subcommands = {c[1] for c in commands}
    assert {"data", "fit", "predict", "plan", "approaches", "ladder", "quantize", "evaluate"} <= subcommands


@pytest.mark.slow
def test_every_tour_command_runs_as_written_from_a_fresh_folder(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "120")
    runner = CliRunner()
    ran = []
    for lang, body in tour_blocks((ROOT / "README.md").read_text()):
        if lang == "python":
            exec(compile(body, "README.md (python block)", "exec"), {"__name__": "__readme__"})
            ran.append("python block")
            continue
        for words in shell_commands(body):
            res = runner.invoke(app, words[1:], catch_exceptions=True)
            assert res.exit_code == 0, f"`{shlex.join(words)}` exited {res.exit_code}:\n{res.output}\n{res.exception!r}"
            ran.append(shlex.join(words))
    # what the tour promises to leave behind
    for name in ("cool_end.jsonl", "fit.json", "fit.png", "multipowerlaw_100M.csv", "runs.db",
                 "example-model/config.json", "calib.txt", "valid.txt", "q8/quantization.json"):
        assert (tmp_path / name).exists(), f"{name} missing after: {ran}"
