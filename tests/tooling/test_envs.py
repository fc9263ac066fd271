"""One source of truth for the software: the conda env files are generated from the locks, which agree with
pyproject.toml (issue 31.4).

`snakemake --sdm conda` cannot run here (no conda on the test machine), so these tests check the files' content:
envs/bmrsparse.yaml and envs/bmrsparse-gpu.yaml are exactly what `tools/lockfile.py envs` writes from
requirements/cpu.lock and requirements/cuda12.lock (every line an exact pin of the lock's version), they pin every
dependency of pyproject.toml (the GPU env the `cuda12` extra too) within its bounds, the CUDA plugin's version equals
JAX's, training rules use the GPU env when the config asks for GPUs, and the post-deploy script installs the project
from the workflow's own folder whatever the working directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENVS = ROOT / "envs"
sys.path.insert(0, str(ROOT / "tools"))
import lockfile  # noqa: E402


def _pip_list(name: str) -> list[str]:
    env = yaml.safe_load((ENVS / name).read_text())
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, f"{name}: expected one pip: section"
    assert "conda-forge" in env["channels"]
    assert any(str(d).replace(" ", "").startswith("python=3.1") for d in env["dependencies"])
    return pips[0]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def _pins(reqs: list[str]) -> dict[str, str]:
    out = {}
    for req in reqs:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([0-9][0-9A-Za-z.]*)", _norm(req))
        if match:
            out[match.group(1)] = match.group(3)
    return out


@pytest.mark.parametrize("name", sorted(lockfile.ENVS))
def test_the_env_is_generated_from_its_lock(name):
    assert (ENVS / name).read_text() == lockfile.conda_env(name), (
        f"envs/{name} is not what `make envs` (tools/lockfile.py envs) writes from the lock")
    assert subprocess.run([sys.executable, str(ROOT / "tools" / "lockfile.py"), "envs", "--check"],
                          capture_output=True, timeout=120).returncode == 0


@pytest.mark.parametrize("name", sorted(lockfile.ENVS))
def test_every_env_line_is_the_locks_pin_and_covers_pyproject(name):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    build, extras, _ = lockfile.ENVS[name]
    lock = {(p.name, str(p.marker) if p.marker else None): p.version
            for p in lockfile.parse_lock(ROOT / "requirements" / f"{build}.lock")}
    pins = {}
    for line in _pip_list(name):
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier: ==version
        assert spec.operator == "==", f"{name}: {line} is not an exact pin"
        key = (canonicalize_name(req.name), str(req.marker) if req.marker else None)
        assert str(lock[key]) == spec.version, f"{name}: {line}, the lock pins {lock[key]}"
        pins.setdefault(key[0], []).append(spec.version)
    env = lockfile.target_environment(lockfile.TARGETS[0])  # CPython 3.11 on Linux x86_64, the env's Python
    for req in lockfile.requirements(PYPROJECT, extras) + lockfile.build_requirements(PYPROJECT):
        if req.marker is not None and not req.marker.evaluate(dict(env, extra="")):
            continue
        versions = pins.get(canonicalize_name(req.name), [])
        assert versions and all(req.specifier.contains(v, prereleases=True) for v in versions), (name, str(req))
    assert "pytest" not in pins and "snakemake" not in pins  # the test and workflow extras stay out


@pytest.mark.parametrize("extra", ["cuda12", "cuda13"])
def test_cuda_plugin_version_equals_jax(extra):
    cuda = PYPROJECT["project"]["optional-dependencies"][extra]
    pins = _pins(cuda)
    for name in ("jax", "jaxlib", f"jax-{extra}-plugin", f"jax-{extra}-pjrt"):
        assert name in pins, f"the {extra} extra does not pin {name} with ==: {cuda}"
    assert len(set(pins.values())) == 1, f"JAX and its CUDA plugin disagree: {pins}"
    assert any(_norm(r).startswith(f"jax[{extra}]") for r in cuda)
    # the pinned JAX satisfies the base dependency's lower bound
    base = next(r for r in PYPROJECT["project"]["dependencies"] if re.match(r"jax\b(?!lib)", r))
    low = re.search(r">=([0-9.]+)", base).group(1)
    version = tuple(int(x) for x in pins["jax"].split(".")[:3])
    assert version >= tuple(int(x) for x in low.split("."))


def test_post_deploy_scripts_install_from_the_workflow_folder(tmp_path):
    assert (ENVS / "bmrsparse.post-deploy.sh").read_text() == (ENVS / "bmrsparse-gpu.post-deploy.sh").read_text()
    # A fake `python` records its arguments; the script is run from an unrelated working directory.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "args"
    (bindir / "python").write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    (bindir / "python").chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    for name in ("bmrsparse.post-deploy.sh", "bmrsparse-gpu.post-deploy.sh"):
        # Snakemake runs it as `<shebang interpreter> <path of the script>`
        subprocess.run(["/usr/bin/env", "bash", str(ENVS / name)], cwd=elsewhere, env=env, check=True)
        assert record.read_text().split() == ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e",
                                              str(ROOT)]
    # A copy of envs/ outside a project checkout refuses with a message instead of installing the wrong folder.
    lone = tmp_path / "lone" / "envs"
    lone.mkdir(parents=True)
    (lone / "x.post-deploy.sh").write_text((ENVS / "bmrsparse.post-deploy.sh").read_text())
    proc = subprocess.run(["bash", str(lone / "x.post-deploy.sh")], cwd=elsewhere, env=env, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "not the bmrsparse project" in proc.stderr


@pytest.mark.parametrize("gpu, env", [(1, "envs/bmrsparse-gpu.yaml"), (0, "envs/bmrsparse.yaml")])
def test_training_rules_use_the_gpu_env_when_asked(gpu, env):
    code = (
        "import sys; from snakemake.api import SnakemakeApi; from snakemake.settings import types as t\n"
        "with SnakemakeApi(t.OutputSettings(quiet={t.Quietness.ALL})) as api:\n"
        "    wf = api.workflow(resource_settings=t.ResourceSettings(), snakefile='Snakefile',\n"
        f"        config_settings=t.ConfigSettings(config={{'resources': {{'gpu': {gpu}}}}}))\n"
        "    rules = wf._workflow.rules\n"
        "    for r in rules: print(r.name, r.conda_env, 'gpu' in r.resources)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if len(line.split()) == 3]
    envs = {name: path for name, path, _ in rows}
    training = [name for name, _, asks_gpu in rows if asks_gpu == "True"]  # the rules with resources: gpu
    assert len(training) >= 4 and "train_warmup" in training, proc.stdout
    assert envs.pop("all") == "None"
    for rule, path in envs.items():
        wanted = env if rule in training else "envs/bmrsparse.yaml"
        assert path.endswith(wanted), f"rule {rule} uses {path}, expected {wanted}"
