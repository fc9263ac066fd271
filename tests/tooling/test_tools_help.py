"""Every tool in tools/ answers --help with its usage, exit status 0, and does nothing else (issue 31.2).

Each tool runs from a copy of the project (so a tool that ignored --help would act on the copy, not on this
checkout), with pip and the network cut off (a tool that started downloading fails at once instead of fetching).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted(p.relative_to(ROOT) for p in (ROOT / "tools").rglob("*") if p.suffix in (".py", ".sh") and p.is_file())


def test_the_tools_are_found():
    names = {p.name for p in TOOLS}
    assert {"unlock_stale.py", "lockfile.py", "check_python.py", "choose_device.sh", "local-slurm.sh"} <= names


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("tool", TOOLS, ids=str)
def test_help_prints_the_usage_and_does_nothing_else(tool, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "tools", project / "tools", ignore=shutil.ignore_patterns(".whl", ".data", "out",
                                                                                     "__pycache__"))
    for name in ("pyproject.toml", "Makefile", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "requirements", project / "requirements")
    before = _snapshot(project)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="", HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               PYTHONDONTWRITEBYTECODE="1", OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    command = [sys.executable] if tool.suffix == ".py" else ["bash"]
    run = subprocess.run([*command, str(project / tool), "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    assert run.stdout.lower().startswith("usage:") and tool.name in run.stdout.splitlines()[0], run.stdout[:500]
    assert len(run.stdout.splitlines()) >= 3, "the usage line and what the tool does"
    assert _snapshot(project) == before, "--help changed files"
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["project"]
