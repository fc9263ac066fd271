"""`make reproduce` picks the JAX build and the profile by hardware (tools/choose_device.sh), tested with a fake
`nvidia-smi` on PATH and dry runs (`make -n`) in a copy of the Makefile: nothing is installed or run. The fake lists
its GPUs for `nvidia-smi -L` and prints the header of a plain `nvidia-smi`, whose "CUDA Version" (the newest CUDA
the driver supports) picks JAX's CUDA 13 or CUDA 12 build.

Each test runs make with a PATH of its own: links to the few tools the Makefile and the script use, a fake
`nvidia-smi` where the test wants a GPU, and fake `python3`, `pip` and `snakemake` that leave a mark if anything
runs them (a dry run must not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d1f6f3e-0c5b-7a2e-9b57-3c1d2f4e6a88)"
#: what a plain `nvidia-smi` prints first (driver 580 on the lent H100s: CUDA 13.0)
HEADER = """Sun Dec  6 10:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: {cuda}     |
+-----------------------------------------+------------------------+----------------------+"""
FOUND = "NVIDIA GPU found (nvidia-smi -L: GPU 0: NVIDIA H100 80GB HBM3; driver for CUDA {cuda})"
TOOLS = ("sh", "echo", "grep", "sed", "head", "tr", "timeout", "cat", "rm", "touch", "test")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def project(tmp_path):
    """A copy of the Makefile, pyproject.toml and the choice script; a bin folder that PATH will be."""
    proj = tmp_path / "proj"
    (proj / "tools").mkdir(parents=True)
    (proj / "requirements").mkdir()
    for part in ("Makefile", "pyproject.toml", "tools/choose_device.sh", "requirements/cpu.lock",
                 "requirements/cuda12.lock", "requirements/cuda13.lock"):
        shutil.copy2(ROOT / part, proj / part)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    marks = tmp_path / "ran"
    for fake in ("python3", "python", "pip", "snakemake"):
        _script(bindir / fake, f'echo "{fake} $*" >> "{marks}"\nexit 1\n')
    return proj


def _fake_gpu(project: Path, listing: str, status: int = 0, cuda: str | None = "13.0") -> None:
    """`nvidia-smi -L` prints ``listing``; a plain `nvidia-smi` the header with "CUDA Version: ``cuda``" (none: a
    header without it). Both exit with ``status``."""
    header = HEADER.format(cuda=cuda) if cuda else HEADER.split("\n")[0]
    _script(project.parent / "bin" / "nvidia-smi", f'echo "$*" >> "{project.parent / "nvidia-smi.args"}"\n'
            f'if [ "$1" = -L ]; then cat <<\'END\'\n{listing}\nEND\nelse cat <<\'END\'\n{header}\nEND\nfi\n'
            f"exit {status}\n")


def _make(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {"PATH": str(project.parent / "bin"), "HOME": str(project.parent), **(env or {})}
    return subprocess.run([shutil.which("make"), "--no-print-directory", *args], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=60)


def _dry_reproduce(project: Path, *args: str, env: dict | None = None) -> list[str]:
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    done = _make(project, "-n", "reproduce", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    # nothing ran: no file made, no python, pip or snakemake called
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert not (project.parent / "ran").exists(), (project.parent / "ran").read_text()
    return done.stdout.splitlines()


#: how make starts Snakemake: as the folder's recorded owner (tools/unlock_stale.py --run)
OWNER_RUN = ".venv/bin/python tools/unlock_stale.py --run . -- "


def _install(build: str) -> list[str]:
    """The set-up of ``build`` (cpu, cuda12, cuda13): its lock, the project, and away with what only the others pin."""
    others = " ".join(f"requirements/{b}.lock" for b in ("cpu", "cuda12", "cuda13") if b != build)
    return [f".venv/bin/python -m pip install --require-hashes -r requirements/{build}.lock",
            ".venv/bin/python -m pip install --no-deps --no-build-isolation -e .",
            f".venv/bin/python tools/lockfile.py remove-others requirements/{build}.lock {others}"]


CPU_INSTALL, CUDA12_INSTALL, CUDA13_INSTALL = _install("cpu"), _install("cuda12"), _install("cuda13")


def _snakemake_runs(lines: list[str]) -> list[str]:
    """The Snakemake command lines that train (not the report's), spaces normalised, without the owner wrapper."""
    return [" ".join(line[len(OWNER_RUN):].split()) for line in lines
            if line.startswith(OWNER_RUN + ".venv/bin/snakemake") and "--report" not in line]


#: how make reproduce runs the plan: through the question when it estimates over an hour (tools/confirm_cost.py)
CONFIRM = ".venv/bin/python tools/confirm_cost.py -- "


def _plans(lines: list[str]) -> list[str]:
    """The arguments of the plan step (python -m bmrsparse.workflow.plan -- SNAKEMAKE ARGS), spaces normalised."""
    prefix = CONFIRM + ".venv/bin/python -m bmrsparse.workflow.plan -- "
    return [" ".join(line[len(prefix):].split()) for line in (" ".join(x.split()) + " " for x in lines)
            if line.startswith(prefix)]


def _installs(lines: list[str]) -> list[str]:
    """The set-up's command lines, each once (a dry run shows the report's set-up again)."""
    return list(dict.fromkeys(line for line in lines if "pip install" in line or "lockfile.py" in line))


def _installed(project: Path, build: str, later: float = 10) -> Path:
    """Make ``build``'s stamp current: newer than pyproject.toml and the locks."""
    stamp = project / ".venv" / f".installed-{build}"
    stamp.parent.mkdir(exist_ok=True)
    stamp.touch()
    newest = max(p.stat().st_mtime for p in (project / "pyproject.toml", *(project / "requirements").glob("*")))
    os.utime(stamp, (newest + later, newest + later))
    return stamp


def test_a_gpu_listed_by_nvidia_smi_picks_the_cuda_build_and_the_papers_grid(project):
    _fake_gpu(project, H100)
    lines = _dry_reproduce(project)
    assert lines[0] == (
        f"echo 'bmrsparse: {FOUND.format(cuda='13.0')}: CUDA 13 build of JAX, "
        "config/paper.yaml (make reproduce DEVICE=cpu for the quick profile on the CPU)'")
    assert _installs(lines) == CUDA13_INSTALL
    assert "touch .venv/.installed-cuda13" in lines and "touch .venv/.installed-cpu" not in lines
    assert "rm -f .venv/.installed-cpu .venv/.installed-cuda12 .venv/.installed-cuda .venv/.installed" in lines
    assert _snakemake_runs(lines) == [
        ".venv/bin/snakemake --profile profiles/local --configfile config/paper.yaml --resources gpu=1"]
    # the plan (jobs, ETA) of the same run comes before it
    assert _plans(lines) == ["--profile profiles/local --configfile config/paper.yaml --resources gpu=1"]
    assert lines.index(next(line for line in lines if "bmrsparse.workflow.plan" in line)) < lines.index(
        next(line for line in lines if line.startswith(OWNER_RUN)))
    # asked only `nvidia-smi -L` and a plain `nvidia-smi` (once each for reproduce, once each for the report's make)
    assert (project.parent / "nvidia-smi.args").read_text().split("\n") == ["-L", "", "-L", "", ""]


@pytest.mark.parametrize("cuda, build, note", [
    ("13.0", "cuda13", ""),
    ("13.2", "cuda13", ""),
    ("12.8", "cuda12", ""),
    ("11.8", "cuda12", " (needs a driver for CUDA 12 or newer: update the NVIDIA driver)"),
])
def test_the_drivers_cuda_version_picks_the_cuda_build(project, cuda, build, note):
    _fake_gpu(project, H100, cuda=cuda)
    lines = _dry_reproduce(project, "CONFIG=config/test.yaml")
    assert lines[0] == (f"echo 'bmrsparse: {FOUND.format(cuda=cuda)}: CUDA {build[4:]} build of JAX{note}, "
                        "config/test.yaml (CONFIG given)'")
    assert _installs(lines) == _install(build)
    assert f"touch .venv/.installed-{build}" in lines


def test_a_driver_that_names_no_cuda_version_and_the_cuda_override(project):
    _fake_gpu(project, H100, cuda=None)
    lines = _dry_reproduce(project)
    assert lines[0].startswith(f"echo 'bmrsparse: {FOUND.format(cuda='version not shown')}: CUDA 12 build of JAX "
                               "(CUDA=13 for the CUDA 13 build), config/paper.yaml")
    assert _installs(lines) == CUDA12_INSTALL
    lines = _dry_reproduce(project, "CUDA=13")
    assert "CUDA 13 build of JAX (CUDA=13 given)" in lines[0] and _installs(lines) == CUDA13_INSTALL
    _fake_gpu(project, H100, cuda="13.0")
    lines = _dry_reproduce(project, "CUDA=12")
    assert "CUDA 12 build of JAX (CUDA=12 given)" in lines[0] and _installs(lines) == CUDA12_INSTALL
    done = _make(project, "-n", "reproduce", "CUDA=11")
    assert done.returncode != 0 and "CUDA=11: use CUDA=12, CUDA=13 or leave it unset" in done.stderr


def test_install_cuda_without_a_gpu_takes_cuda_12_unless_told(project):
    """`make install-cuda` on a login node (no GPU): the CUDA 12 build, or CUDA=13's; nothing else is chosen."""
    assert _installs(_make(project, "-n", "install-cuda").stdout.splitlines()) == CUDA12_INSTALL
    assert _installs(_make(project, "-n", "install-cuda", "CUDA=13").stdout.splitlines()) == CUDA13_INSTALL
    _fake_gpu(project, H100, cuda="13.0")
    assert _installs(_make(project, "-n", "install-cuda").stdout.splitlines()) == CUDA13_INSTALL


def test_without_nvidia_smi_the_cpu_build_and_the_quick_profile(project):
    lines = _dry_reproduce(project)
    assert lines[0] == "echo 'bmrsparse: no NVIDIA GPU (nvidia-smi not found): CPU build of JAX, config/config.yaml'"
    assert _installs(lines) == CPU_INSTALL
    assert "touch .venv/.installed-cpu" in lines
    assert [line.split() for line in _snakemake_runs(lines)] == [
        [".venv/bin/snakemake", "--profile", "profiles/local", "--configfile", "config/config.yaml"]]
    assert _plans(lines) == ["--profile profiles/local --configfile config/config.yaml"]
    # PLAN=0: no plan step
    assert _plans(_dry_reproduce(project, "PLAN=0")) == []


def test_an_nvidia_smi_that_fails_or_lists_nothing_means_no_gpu(project):
    _fake_gpu(project, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", status=9)
    first = _dry_reproduce(project)[0]
    assert first.startswith("echo 'bmrsparse: no NVIDIA GPU (nvidia-smi -L failed (exit 9): NVIDIA-SMI has failed")
    assert first.endswith("CPU build of JAX, config/config.yaml'")
    _fake_gpu(project, "No devices found.")
    assert _dry_reproduce(project)[0] == (
        "echo 'bmrsparse: no NVIDIA GPU (nvidia-smi -L lists no GPU): CPU build of JAX, config/config.yaml'")


def test_device_cpu_with_a_gpu_picks_the_quick_profile_on_the_cpu(project):
    _fake_gpu(project, H100)
    lines = _dry_reproduce(project, "DEVICE=cpu")
    assert lines[0] == (f"echo 'bmrsparse: DEVICE=cpu given; {FOUND.format(cuda='13.0')}: CPU build of JAX, "
                        "config/config.yaml'")
    assert _installs(lines) == CPU_INSTALL
    assert [line.split() for line in _snakemake_runs(lines)][0][-1] == "config/config.yaml"


def test_device_cuda_without_a_gpu_and_an_explicit_config_win(project):
    lines = _dry_reproduce(project, "DEVICE=cuda", "CONFIG=config/test.yaml")
    assert lines[0] == ("echo 'bmrsparse: DEVICE=cuda given; no NVIDIA GPU (nvidia-smi not found): CUDA 12 build of "
                        "JAX (CUDA=13 for the CUDA 13 build), config/test.yaml (CONFIG given)'")
    assert _installs(lines) == CUDA12_INSTALL
    assert _snakemake_runs(lines) == [
        ".venv/bin/snakemake --profile profiles/local --configfile config/test.yaml --resources gpu=1"]
    # the report is built from the same choice
    assert "make --no-print-directory report DEVICE=cuda CONFIG=config/test.yaml" in " ".join(lines)


def test_config_from_the_environment_and_a_subset_through_smk_args(project):
    _fake_gpu(project, H100 + "\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)")
    lines = _dry_reproduce(project, "SMK_ARGS=--config 'archs=[mlp]' 'datasets=[cifar10]'",
                           env={"CONFIG": "config/authors-code.yaml"})
    assert "GPU 0: NVIDIA H100 80GB HBM3, and 1 more" in lines[0]
    assert "config/authors-code.yaml (CONFIG given)" in lines[0]
    assert _snakemake_runs(lines) == [
        ".venv/bin/snakemake --profile profiles/local --configfile config/authors-code.yaml --resources gpu=2 "
        "--config 'archs=[mlp]' 'datasets=[cifar10]'"]
    report = [line for line in lines if "--report" in line]
    assert report and all("--config 'archs=[mlp]' 'datasets=[cifar10]'" in line for line in report)


def test_plan_choice_prints_the_choice_and_installs_nothing(project):
    _fake_gpu(project, H100)
    done = _make(project, "plan-choice")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith(f"bmrsparse: {FOUND.format(cuda='13.0')}: CUDA 13 build of JAX")
    assert out[1] == "DEVICE=cuda BUILD=cuda13 EXTRAS=test,cuda13 CONFIG=config/paper.yaml GPUS=1"
    assert not (project / ".venv").exists() and not (project.parent / "ran").exists()


def test_make_test_keeps_the_cpu_install_and_does_not_ask_nvidia_smi(project):
    _fake_gpu(project, H100)
    done = _make(project, "-n", "test")
    assert done.returncode == 0, done.stderr
    assert _installs(done.stdout.splitlines()) == CPU_INSTALL
    assert ".venv/bin/pytest -q" in done.stdout
    assert not (project.parent / "nvidia-smi.args").exists()


def test_stamps_switch_the_install_and_follow_pyproject_and_the_lock(project):
    stamp = _installed(project, "cpu")
    old = stamp.stat().st_mtime - 10
    for lock in ("cpu", "cuda12", "cuda13"):
        os.utime(project / "requirements" / f"{lock}.lock", (old, old))
    assert "pip install" not in _make(project, "-n", "install-cpu").stdout  # current
    assert _installs(_make(project, "-n", "install-cuda12").stdout.splitlines()) == CUDA12_INSTALL  # a switch
    assert _installs(_make(project, "-n", "install-cuda13").stdout.splitlines()) == CUDA13_INSTALL
    os.utime(project / "pyproject.toml", (old + 20, old + 20))
    assert _installs(_make(project, "-n", "install-cpu").stdout.splitlines()) == CPU_INSTALL  # pyproject changed
    os.utime(stamp, (old + 30, old + 30))
    assert "pip install" not in _make(project, "-n", "install-cpu").stdout
    os.utime(project / "requirements" / "cpu.lock", (old + 40, old + 40))
    assert _installs(_make(project, "-n", "install-cpu").stdout.splitlines()) == CPU_INSTALL  # the lock changed
    os.utime(stamp, (old + 45, old + 45))
    os.utime(project / "requirements" / "cuda12.lock", (old + 50, old + 50))
    os.utime(project / "requirements" / "cuda13.lock", (old + 50, old + 50))
    assert "pip install" not in _make(project, "-n", "install-cpu").stdout  # the other builds' locks: no matter


def test_an_unknown_device_stops_with_a_message(project):
    done = _make(project, "-n", "reproduce", "DEVICE=gpu")
    assert done.returncode != 0
    assert "DEVICE=gpu: use DEVICE=cpu, DEVICE=cuda or leave it unset" in done.stderr
    assert not (project.parent / "ran").exists()


def test_the_first_line_of_a_real_run_is_the_choice(project):
    """`make reproduce` for real, with an install that is current and a .venv whose python and snakemake only say
    how they were called."""
    _fake_gpu(project, H100)
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "snakemake"):
        _script(venv / "bin" / name, f'echo "{name} $*"\n')
    _installed(project, "cuda13")
    done = _make(project, "reproduce", "SMK_ARGS=--config 'archs=[mlp]'")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith(f"bmrsparse: {FOUND.format(cuda='13.0')}: CUDA 13 build")
    ran = [line for line in out if line.startswith(("python ", "snakemake "))]
    assert ran == ["python tools/unlock_stale.py .",
                   "python tools/confirm_cost.py -- .venv/bin/python -m bmrsparse.workflow.plan -- --profile profiles/local "
                   "--configfile config/paper.yaml --resources gpu=1 --config archs=[mlp]",
                   "python tools/unlock_stale.py --run . -- .venv/bin/snakemake --profile profiles/local "
                   "--configfile config/paper.yaml --resources gpu=1 --config archs=[mlp]",
                   "python tools/unlock_stale.py .",
                   "python tools/unlock_stale.py --run . -- .venv/bin/snakemake --profile profiles/local "
                   "--configfile config/paper.yaml --config archs=[mlp] --report results/report.html"]
    assert not (project.parent / "ran").exists() and not (venv / ".installed-cpu").exists()
