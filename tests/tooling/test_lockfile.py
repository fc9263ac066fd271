"""The lock files agree with pyproject.toml (issue 20.2), and the check notices when they do not.

requirements/cpu.lock (dependencies + the `test` extra, which pulls `workflow`), requirements/cuda12.lock and
requirements/cuda13.lock (+ the `cuda12` / `cuda13` extra) are uv's universal locks with hashes; tools/lockfile.py
checks them on CPython 3.11 and 3.12, Linux x86_64 and aarch64: each requirement of pyproject.toml is met by exactly
one pinned line, and no line pinned for pyproject.toml names a package it no longer asks for. requirements/newest.lock
(Python >= 3.12, `make test-newest`) pins the newest JAX the bound allows. Nothing here downloads or installs.
"""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import lockfile  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = {build: ROOT / "requirements" / f"{build}.lock" for build in lockfile.LOCK_EXTRAS}


def _with_deps(deps: list[str]) -> dict:
    changed = copy.deepcopy(PYPROJECT)
    changed["project"]["dependencies"] = deps
    return changed


@pytest.mark.parametrize("build", sorted(LOCKS))
def test_the_lock_agrees_with_pyproject(build):
    assert lockfile.check(PYPROJECT, LOCKS[build], lockfile.LOCK_EXTRAS[build]) == []


@pytest.mark.parametrize("build", sorted(LOCKS))
def test_every_line_has_hashes_and_the_header_names_the_command(build):
    text = LOCKS[build].read_text()
    header = text.splitlines()[1]
    extras = " ".join(f"--extra {e}" for e in lockfile.LOCK_EXTRAS[build])
    assert header.startswith("#    make lock  (= uv pip compile pyproject.toml requirements/build.in " + extras), header
    assert f"-o requirements/{build}.lock" in header and "--generate-hashes" in header and "--universal" in header
    # every pinned line is followed by at least one sha256 hash (pip --require-hashes needs them all)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(blocks) == len(lockfile.parse_lock(LOCKS[build]))
    for block in blocks:
        assert "--hash=sha256:" in block, block.splitlines()[0]


@pytest.mark.parametrize("cuda", ["cuda12", "cuda13"])
def test_a_cuda_lock_adds_only_its_cuda_build(cuda):
    env = lockfile.target_environment(lockfile.TARGETS[0])
    cpu = {p.name: p.version for p in lockfile.parse_lock(LOCKS["cpu"]) if p.applies(env)}
    pins = {p.name: p.version for p in lockfile.parse_lock(LOCKS[cuda]) if p.applies(env)}
    assert {n: v for n, v in pins.items() if n in cpu} == cpu  # the same versions for what both install
    extra = set(pins) - set(cpu)
    assert {f"jax-{cuda}-plugin", f"jax-{cuda}-pjrt"} <= extra
    assert all(n.startswith((f"jax-{cuda}-", "nvidia-")) for n in extra), extra
    # NVIDIA's CUDA 12 libraries end in -cu12; CUDA 13's have no suffix (or -cu13)
    assert all(n.endswith("-cu12") == (cuda == "cuda12") for n in extra if n.startswith("nvidia-cu")), extra
    # the plugin's version is JAX's
    assert pins[f"jax-{cuda}-plugin"] == pins[f"jax-{cuda}-pjrt"] == pins["jax"] == pins["jaxlib"]


def test_the_newest_lock_pins_a_newer_jax_within_pyproject():
    """requirements/newest.lock (`make test-newest`, Python >= 3.12): the newest JAX the bound allows, newer than
    the other locks' (else `make test-newest` would test nothing new), with its own jaxlib."""
    from packaging.requirements import Requirement

    newest = lockfile.parse_lock(ROOT / "requirements" / "newest.lock")
    pins = {p.name: p.version for p in newest}
    locked = {p.name: p.version for p in lockfile.parse_lock(LOCKS["cpu"])}
    bound = next(Requirement(d) for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name == "jax")
    assert pins["jax"] in bound.specifier and pins["jax"] > locked["jax"]
    assert pins["jaxlib"] == pins["jax"] and "pytest" in pins and "snakemake" not in pins


def test_a_version_pyproject_no_longer_allows_is_reported():
    deps = [("jax>=0.11" if re.match(r"jax\b(?!lib)", d) else d) for d in PYPROJECT["project"]["dependencies"]]
    problems = lockfile.check(_with_deps(deps), LOCKS["cpu"], ("test",))
    assert problems and all("jax==" in p and "jax>=0.11" in p for p in problems)
    assert len(problems) == len(lockfile.TARGETS)  # one per target, each naming it


def test_a_new_requirement_missing_from_the_lock_is_reported():
    problems = lockfile.check(_with_deps(PYPROJECT["project"]["dependencies"] + ["requests-toolbelt>=1"]),
                              LOCKS["cpu"], ("test",))
    assert problems and all("0 pinned lines for requests-toolbelt>=1" in p for p in problems)


def test_a_package_pyproject_dropped_is_reported():
    deps = [d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("pooch")]
    problems = lockfile.check(_with_deps(deps), LOCKS["cpu"], ("test",))
    assert problems and all("no longer asks for pooch" in p for p in problems)


def test_two_lines_for_one_target_are_reported(tmp_path):
    # numpy is pinned twice with exclusive markers (3.11: one version, >= 3.12: another); drop the markers
    text = re.sub(r"^(numpy==[^ ]+) ; [^\\]+\\", r"\1 \\", LOCKS["cpu"].read_text(), flags=re.M)
    lock = tmp_path / "cpu.lock"
    lock.write_text(text)
    problems = lockfile.check(PYPROJECT, lock, ("test",))
    assert problems and all("2 pinned lines for numpy" in p for p in problems)


def test_an_extra_that_does_not_exist_is_an_error():
    with pytest.raises(ValueError, match="no extra 'gpu'"):
        lockfile.requirements(PYPROJECT, ("gpu",))


def test_the_cli_check_passes_here():
    assert lockfile.main(["lockfile.py", "check"]) == 0


def test_a_build_switch_removes_only_what_the_other_lock_alone_pins(monkeypatch):
    removed = []
    monkeypatch.setattr(lockfile.subprocess, "run", lambda cmd, check: removed.append(cmd))

    class Dist:
        def __init__(self, name):
            self.metadata = {"Name": name}

    installed = ["jax", "jaxlib", "numpy", "jax-cuda12-plugin", "jax_cuda12_pjrt", "nvidia-cublas-cu12", "pip",
                 "my-own-tool"]
    monkeypatch.setattr(lockfile.metadata, "distributions", lambda: [Dist(n) for n in installed])
    # cuda12 -> cpu: the plugin and NVIDIA's libraries go; JAX, numpy, pip and the user's own package stay
    gone = lockfile.remove_others(LOCKS["cpu"], LOCKS["cuda12"], LOCKS["cuda13"])
    assert gone == ["jax-cuda12-pjrt", "jax-cuda12-plugin", "nvidia-cublas-cu12"]
    assert removed == [[sys.executable, "-m", "pip", "uninstall", "-y", *gone]]
    # cuda12 -> cuda13: CUDA 12's plugin and libraries go too
    removed.clear()
    assert lockfile.remove_others(LOCKS["cuda13"], LOCKS["cpu"], LOCKS["cuda12"]) == gone
    # cpu -> cuda12: the CPU lock pins nothing the CUDA lock lacks, and nothing of CUDA 13's is installed
    removed.clear()
    assert lockfile.remove_others(LOCKS["cuda12"], LOCKS["cpu"], LOCKS["cuda13"]) == [] and removed == []


def test_the_locks_pin_the_build_back_end():
    """`pip install --no-build-isolation -e .` builds with what the lock installed: pyproject.toml's
    [build-system] requires are pinned in both locks (and listed in requirements/build.in, which `make lock`
    compiles), so an offline set-up needs nothing beyond the lock's files (issue 31.2)."""
    build = lockfile.build_requirements(PYPROJECT)
    assert {r.name for r in build} >= {"setuptools", "wheel"}
    assert sorted(map(str, lockfile.read_requirements_in(ROOT / lockfile.BUILD_IN))) == sorted(map(str, build))
    env = lockfile.target_environment(lockfile.TARGETS[0])
    for build_lock in LOCKS.values():
        pins = {p.name: p.version for p in lockfile.parse_lock(build_lock) if p.applies(env)}
        for req in build:
            assert req.name in pins and req.specifier.contains(pins[req.name]), (build_lock.name, str(req))
    # a build.in that no longer says what pyproject.toml says is reported
    changed = copy.deepcopy(PYPROJECT)
    changed["build-system"]["requires"] = ["setuptools>=99", "wheel"]
    problems = lockfile.check(changed, LOCKS["cpu"], lockfile.LOCK_EXTRAS["cpu"])
    assert any("setuptools" in p and "does not allow" in p for p in problems), problems

