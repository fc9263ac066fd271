"""A killed head process: SIGKILL of the whole `make reproduce`, then the README's command again.

The README's advice after a kill is "rerun the same command". Snakemake's lock outlives a SIGKILLed head process,
so a plain rerun would stop with "Directory cannot be locked"; `make reproduce` removes such a stale lock first
(tools/unlock_stale.py). The test kills every process of a running
`make reproduce DEVICE=cpu CONFIG=config/test.yaml` (MLP, Flat-FF and BMR-S&S) once the warm-up is done and other
training jobs run, reruns exactly that command, and checks that it completes with the metrics of an uninterrupted run,
bit for bit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ["make", "reproduce", "DEVICE=cpu", "CONFIG=config/test.yaml", "PLAN=0"]  # the ETA is not its subject
METRICS = "results/metrics/metrics.csv"
#: The uninterrupted reference: the Snakemake call `make reproduce DEVICE=cpu CONFIG=config/test.yaml` makes, up to
#: the metrics only (what is compared; the figures, tables and report it would add are never looked at).
REFERENCE_COMMAND = [".venv/bin/snakemake", "--profile", "profiles/local", "--configfile", "config/test.yaml", "--",
                     METRICS]
WARMUP_DONE = "results/warmup/fashion_mnist/mlp/lr0.005/seed0/metrics.csv"  # Flat-FF's warm-up
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
COMPARED = ["dataset", "arch", "method", "seed", "epoch", "step", "acc", "ece", "nll", "pruned_fraction"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's FashionMNIST (dataset-fashion-mnist)"),
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
]


def _project(dest: Path, library: Path) -> Path:
    """A copy of the workflow with the Makefile, tools/ and the library snapshot ``library``, config/test.yaml cut to
    the MLP with Flat-FF and BMR-S&S, and a .venv that forwards to this interpreter (its stamp newer than
    pyproject.toml and the locks, so make installs nothing)."""
    project = copy_workflow(dest)
    for part in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / part, project / part)
    shutil.copytree(ROOT / "requirements", project / "requirements")
    shutil.copytree(ROOT / "tools", project / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(library, project / "src" / "bmrsparse")
    config = yaml.safe_load((project / "config" / "test.yaml").read_text())
    config["archs"] = ["mlp"]
    config["methods"] = ["flat_ff", "bmr_ss"]
    (project / "config" / "test.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    bindir = project / ".venv" / "bin"
    bindir.mkdir(parents=True)
    for name, target in (("python", sys.executable), ("snakemake", str(Path(sys.executable).parent / "snakemake"))):
        (bindir / name).write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
        (bindir / name).chmod(0o755)
    (project / ".venv" / ".installed-cpu").touch()
    return project


def _env(project: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(project / "src"))  # jobs run the project's own library snapshot
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _processes_in(folder: Path) -> list[int]:
    """Pids whose working directory is inside ``folder`` (the whole workflow: make, Snakemake and its jobs)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == folder or folder in cwd.parents:
                out.append(int(entry.name))
    return out


def _kill_everything(proc: subprocess.Popen, folder: Path) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for _ in range(20):  # anything the process group did not hold (none expected)
        pids = _processes_in(folder)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    pytest.fail(f"processes survive in {folder}: {_processes_in(folder)}")


def _run(project: Path, command: list[str] = COMMAND) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=project, env=_env(project), capture_output=True, text=True, timeout=1800)


def _metrics(project: Path) -> pd.DataFrame:
    frame = pd.read_csv(project / METRICS)
    return frame[COMPARED].sort_values(COMPARED[:5]).reset_index(drop=True)


def test_sigkill_of_make_reproduce_then_the_same_command_completes_bit_identical(tmp_path):
    library = tmp_path / "bmrsparse"  # one snapshot of the library for both runs
    shutil.copytree(ROOT / "src" / "bmrsparse", library, ignore=shutil.ignore_patterns("__pycache__"))
    killed = _project(tmp_path / "killed", library)
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(COMMAND, cwd=killed, env=_env(killed), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + 900
    while not (killed / WARMUP_DONE).exists():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the warm-up did not finish in 15 minutes"
        time.sleep(0.2)
    time.sleep(2)  # the jobs after the warm-up have started
    assert first.poll() is None, "the workflow ended before it could be killed"
    _kill_everything(first, killed)
    assert list((killed / ".snakemake" / "locks").glob("*.lock")), "the killed Snakemake left no lock"
    assert not (killed / METRICS).exists()

    # The uninterrupted reference runs beside the rerun (its own folder: the rerun's unlock does not see it).
    reference = _project(tmp_path / "reference", library)
    with open(tmp_path / "reference.log", "w") as sink:
        uninterrupted = subprocess.Popen(REFERENCE_COMMAND, cwd=reference, env=_env(reference), stdout=sink,
                                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        again = _run(killed)
        assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
        assert "removed the lock a killed Snakemake left" in again.stderr
        assert (killed / "results" / "report.html").exists()
        uninterrupted.wait(timeout=1800)
    finally:
        if uninterrupted.poll() is None:
            os.killpg(uninterrupted.pid, signal.SIGKILL)
            uninterrupted.wait()
    assert uninterrupted.returncode == 0, (tmp_path / "reference.log").read_text()[-5000:]
    pd.testing.assert_frame_equal(_metrics(killed), _metrics(reference), check_exact=True)


def test_unlock_refuses_while_a_snakemake_works_in_the_folder(tmp_path):
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").touch()
    # a stand-in head process: argv[1] is named snakemake, its cwd is the folder
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    head = subprocess.Popen([sys.executable, str(fake), "--cores", "1"], cwd=tmp_path)
    try:
        time.sleep(0.3)
        busy = subprocess.run([sys.executable, str(ROOT / "tools" / "unlock_stale.py"), str(tmp_path)],
                              capture_output=True, text=True)
        assert busy.returncode == 1 and str(head.pid) in busy.stderr
        assert (locks / "0.input.lock").exists()
    finally:
        head.kill()
        head.wait()
    free = subprocess.run([sys.executable, str(ROOT / "tools" / "unlock_stale.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert free.returncode == 0 and not list(locks.glob("*.lock"))
