"""Set-up on a new machine (issue 31.2): make checks the Python before it builds .venv, and installs offline from a
folder of the lock's files (PIP_NO_INDEX=1, PIP_FIND_LINKS=<folder>), because the locks pin the build back-end and
the project is built with it (pip install --no-build-isolation -e .).

Each test runs make in a copy of the project, with pip's configuration of this machine switched off and the network
cut (a dead proxy), so nothing but the given folder can be reached.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import check_python  # noqa: E402
import lockfile  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
DEAD_PROXY = "http://127.0.0.1:9"


def _project(dest: Path) -> Path:
    """A copy of what `make install-cpu` reads: Makefile, pyproject.toml, README.md, requirements/, tools/, src/."""
    dest.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".whl", ".data", "out")
    for name in ("requirements", "tools", "src"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def _offline_env(wheels: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k.lower() not in ("no_proxy",)}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY)
    if wheels is not None:
        env["PIP_FIND_LINKS"] = str(wheels)
    return env


def _make(project: Path, *args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("make"), "--no-print-directory", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------- Python check
def test_the_message_names_the_version_needed_and_how_to_choose_another():
    assert check_python.required(ROOT / "pyproject.toml") == (3, 11)
    message = check_python.problem((3, 9, 18, "final", 0), (3, 11), True, "/usr/bin/python3")
    assert "needs Python >= 3.11" in message and "/usr/bin/python3 is Python 3.9.18" in message
    assert "PYTHON=" in message
    assert "python3-venv" in check_python.problem((3, 12, 1, "final", 0), (3, 11), False, "py")
    assert check_python.problem((3, 11, 0, "final", 0), (3, 11), True, "py") is None


def _old_pythons() -> list[str]:
    """Interpreters older than 3.11 found on this machine (PATH, pyenv's versions)."""
    found = [shutil.which(f"python3.{minor}") for minor in range(6, 11)]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.[0-9]*")))
    out = []
    for path in dict.fromkeys(p for p in found if p and not p.endswith("-config")):
        try:
            run = subprocess.run([path, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if run.returncode == 0 and tuple(map(int, run.stdout.split())) < (3, 11):
            out.append(path)
    return out


def test_make_stops_with_a_message_before_building_the_venv_with_an_old_python(tmp_path):
    old = _old_pythons()
    if not old:
        pytest.skip("no Python older than 3.11 on this machine")
    project = _project(tmp_path / "proj")
    done = _make(project, "install-cpu", f"PYTHON={old[-1]}", env=_offline_env(), timeout=300)
    assert done.returncode != 0
    assert re.search(r"bmrsparse needs Python >= 3\.11 \(pyproject\.toml's requires-python\), but .* is Python 3\.\d+",
                     done.stderr), done.stdout + done.stderr
    assert not (project / ".venv").exists()
    done = _make(project, "test", "PYTHON=python2.99-nowhere", env=_offline_env(), timeout=120)
    assert done.returncode != 0 and "no python2.99-nowhere on PATH" in done.stderr
    assert not (project / ".venv").exists()


# ------------------------------------------------------------------------------------------------ offline set-up
def _lock_blocks(lock: Path, names: set[str]) -> str:
    """The lines (pin, hashes, via) of ``names`` in ``lock``, as the lock writes them."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2])
    keep = [b for b in blocks if re.match(r"[A-Za-z0-9._-]+", b).group(0).lower() in names]
    assert len(keep) == len(names), f"{lock.name} does not pin all of {sorted(names)}"
    return "\n".join(keep) + "\n"


def _download(requirements: Path, dest: Path) -> None:
    """The files of ``requirements`` (hashes checked) from the indexes pip is configured with here."""
    run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-q", "-r",
                          str(requirements), "-d", str(dest)], capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        pytest.skip(f"cannot fill the wheel folder here (pip download: {run.stderr[-500:]})")


def test_the_project_installs_offline_from_a_folder_of_the_locks_files(tmp_path):
    """The build back-end from the lock and the project, no index: with a lock cut down to the build back-end (and
    `packaging`, which tools/lockfile.py imports), the set-up's every step runs offline."""
    project = _project(tmp_path / "proj")
    subset = project / "requirements" / "build-only.lock"
    subset.write_text("# setuptools, wheel and packaging as requirements/cpu.lock pins them\n"
                      + _lock_blocks(ROOT / "requirements" / "cpu.lock", {"setuptools", "wheel", "packaging"}))
    wheels = tmp_path / "wheels"
    _download(subset, wheels)
    done = _make(project, "install-cpu", f"CPU_LOCK={subset.relative_to(project)}", f"PYTHON={sys.executable}",
                 env=_offline_env(wheels))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "--no-build-isolation" in done.stdout
    venv_python = project / ".venv" / "bin" / "python"
    run = subprocess.run([str(venv_python), "-c", "import importlib.metadata as m, bmrsparse; "
                          "print(m.version('bmrsparse'), m.version('setuptools'), bmrsparse.__file__)"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    version, setuptools, where = run.stdout.split()
    assert version == "0.1.0" and Path(where).is_relative_to(project / "src")  # editable, from the copy
    pins = {p.name: str(p.version) for p in lockfile.parse_lock(subset)}
    assert setuptools == pins["setuptools"]  # built with the locked back-end, not a fetched one


@pytest.mark.slow
def test_make_wheels_then_the_whole_cpu_set_up_offline(tmp_path):
    """`make wheels` fills a folder with every file requirements/cpu.lock pins; `make install-cpu` then sets up
    .venv from it alone, and JAX and the library run. ($BMRSPARSE_WHEELS: a folder filled before, to reuse.)"""
    project = _project(tmp_path / "proj")
    wheels = Path(os.environ.get("BMRSPARSE_WHEELS") or tmp_path / "wheels")
    if not os.environ.get("BMRSPARSE_WHEELS"):
        env = {k: v for k, v in os.environ.items()}
        done = _make(project, "wheels", f"WHEELS={wheels}", "DEVICE=cpu", f"PYTHON={sys.executable}", env=env,
                     timeout=3000)
        if done.returncode != 0:
            pytest.skip(f"cannot fill the wheel folder here: {(done.stdout + done.stderr)[-800:]}")
        assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=" in done.stdout
    done = _make(project, "install-cpu", f"PYTHON={sys.executable}", env=_offline_env(wheels), timeout=3000)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = subprocess.run([str(project / ".venv" / "bin" / "python"), "-c",
                          "import jax.numpy as jnp; from bmrsparse.bmr import spike_and_slab; "
                          "q, keep = spike_and_slab(jnp.array([0., 0., 3., 3.]), jnp.full(4, 0.1)); print(keep.tolist())"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == "[False, False, True, True]", run.stderr[-2000:]
