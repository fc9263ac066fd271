"""No silent CPU fallback: a job assigned a GPU by the scheduler or CUDA but running a CPU-only JAX stops with the fix.

Unit tests of :mod:`bmrsparse.provenance` (the evidence of a GPU, the opt-out, the digest) and one real training
job of the workflow (config/test.yaml, MLP warm-up) run as if SLURM had given it a GPU: it fails with the message,
and runs with ``BMRSPARSE_ALLOW_CPU=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_workflow

from bmrsparse import provenance as prov

GIVEN_GPU = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0", "SLURM_JOB_ID": "42"}


@pytest.mark.parametrize(
    "env, gpu, given",
    [
        ({}, 0, False),
        ({}, 1, False),  # a laptop run with a config's gpu: 1 keeps working
        ({"CUDA_VISIBLE_DEVICES": ""}, 1, False),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 1, False),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 1, False),  # what SLURM writes for a job without GPUs
        ({"CUDA_VISIBLE_DEVICES": "none"}, 1, False),
        ({"SLURM_JOB_ID": "7"}, 0, False),  # a CPU job on SLURM
        ({"SLURM_JOB_ID": "7"}, 1, False),  # asking for a GPU is no evidence of having one
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "", "SLURM_GPUS_ON_NODE": "0"}, 1, False),
        ({"SLURM_GPUS_ON_NODE": "n/a"}, 0, False),
        ({"CUDA_VISIBLE_DEVICES": "0"}, 0, True),
        ({"SLURM_JOB_GPUS": "1"}, 0, True),
        ({"SLURM_STEP_GPUS": "0,1"}, 0, True),
        ({"SLURM_GPUS_ON_NODE": "2"}, 0, True),
        ({"GPU_DEVICE_ORDINAL": "0"}, 0, True),
    ],
)
def test_scheduler_gpu_evidence(env, gpu, given):
    assert bool(prov.scheduler_gpus(env, gpu)) is given


def test_cpu_slurm_allocation_trains_on_cpu_and_a_gpu_assignment_still_refuses():
    # inside salloc/srun without GPUs, a config asking for a GPU runs on the CPU
    assert prov.check_accelerator({"SLURM_JOB_ID": "4242"}, resources_gpu=1, backend="cpu") == "cpu"
    assert prov.check_accelerator({"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "-1"}, 1, backend="cpu") == "cpu"
    # SLURM assigned GPU 0 (even with resources.gpu: 0 in the config) but JAX is CPU-only: refused
    with pytest.raises(prov.GPUFallbackError, match="SLURM_JOB_GPUS=0"):
        prov.check_accelerator({"SLURM_JOB_ID": "4242", "SLURM_JOB_GPUS": "0"}, resources_gpu=0, backend="cpu")


def test_cpu_backend_with_a_gpu_is_refused_with_cause_and_fix():
    with pytest.raises(prov.GPUFallbackError) as err:
        prov.check_accelerator(GIVEN_GPU, resources_gpu=1, backend="cpu")
    message = str(err.value)
    for part in ("CUDA_VISIBLE_DEVICES=0", "JAX runs on the CPU", "'.[cuda12]'", "'.[cuda13]'", "--sdm conda",
                 "resources.gpu: 0", f"{prov.ALLOW_CPU_ENV}=1"):
        assert part in message


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_opt_out_allows_cpu(value):
    assert prov.check_accelerator({**GIVEN_GPU, prov.ALLOW_CPU_ENV: value}, 1, backend="cpu") == "cpu"


def test_gpu_backend_and_laptop_pass():
    assert prov.check_accelerator(GIVEN_GPU, 1, backend="gpu") == "gpu"
    assert prov.check_accelerator({}, 1, backend="cpu") == "cpu"
    assert prov.check_accelerator({prov.ALLOW_CPU_ENV: "0", "SLURM_JOB_ID": "3"}, 0, backend="cpu") == "cpu"
    with pytest.raises(prov.GPUFallbackError):
        prov.check_accelerator({**GIVEN_GPU, prov.ALLOW_CPU_ENV: "0"}, 1, backend="cpu")


def test_library_digest_follows_the_source(tmp_path):
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "sub" / "b.py").write_text("y = 2\n")
    first = prov.library_digest(root)
    assert len(first) == 16 and first == prov.library_digest(root)
    (root / "sub" / "b.py").write_text("y = 3\n")
    assert prov.library_digest(root) != first
    (root / "notes.txt").write_text("not code")
    assert prov.library_digest(root) == prov.library_digest(root)
    assert prov.library_digest() == prov.library_digest(Path(prov.__file__).parent)


def test_provenance_names_versions_and_device():
    record = prov.provenance()
    assert tuple(record) == prov.PROVENANCE_COLUMNS
    assert record["library"] == prov.library_digest()
    assert record["device"].startswith(("cpu: ", "gpu: "))
    import platform

    import flax
    import jax
    import numpy
    import numpyro
    import optax

    assert (record["jax"], record["numpyro"], record["flax"], record["numpy"], record["optax"]) == (
        jax.__version__, numpyro.__version__, flax.__version__, numpy.__version__, optax.__version__)
    assert record["python"] == platform.python_version()
    assert record["commit"] == prov.git_commit()
    try:
        import jax_plugins.xla_cuda12  # noqa: F401
    except ImportError:
        assert record["cuda_plugin"] == "none"
    else:
        assert record["cuda_plugin"].startswith("jax-cuda12-plugin ")


def test_git_commit_names_the_checkout_and_its_changes(tmp_path):
    assert prov.git_commit(tmp_path) == "unknown"  # not in git
    repo = tmp_path / "repo"
    (repo / "src" / "lib").mkdir(parents=True)
    (repo / "src" / "lib" / "a.py").write_text("x = 1\n")

    def git(*args):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)

    git("init", "-q")
    assert prov.git_commit(repo / "src" / "lib") == "unknown"  # a checkout, but the library is not tracked
    git("add", ".")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert prov.git_commit(repo / "src" / "lib") == head
    (repo / "notes.txt").write_text("untracked")  # an untracked file changes no tracked code
    assert prov.git_commit(repo / "src" / "lib") == head
    (repo / "src" / "lib" / "a.py").write_text("x = 2\n")
    assert prov.git_commit(repo / "src" / "lib") == f"{head}-modified"


WARMUP = "results/warmup/fashion_mnist/mlp/lr0.005/seed0"


def _run(workdir: Path, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/test.yaml",
           "override.yaml", "--", f"{WARMUP}/metrics.csv"]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(__import__("jax").default_backend() != "cpu", reason="needs a CPU-only JAX")
def test_training_job_given_a_gpu_stops_then_runs_with_opt_out(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", "archs: [mlp]\n")
    env = {k: v for k, v in os.environ.items() if k != prov.ALLOW_CPU_ENV}
    env.update(GIVEN_GPU)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    refused = _run(workdir, env)
    assert refused.returncode != 0
    log = (workdir / "logs/train_warmup/fashion_mnist/mlp/lr0.005/seed0.log").read_text()
    assert "GPUFallbackError" in log and "JAX runs on the CPU" in log and prov.ALLOW_CPU_ENV in log
    assert not (workdir / WARMUP / "metrics.csv").exists()

    env[prov.ALLOW_CPU_ENV] = "1"
    allowed = _run(workdir, env)
    assert allowed.returncode == 0, (allowed.stdout + allowed.stderr)[-3000:]
    metrics = pd.read_csv(workdir / WARMUP / "metrics.csv")
    record = prov.provenance()
    record["xla_threads"] = "1"  # the job's `threads` (config/test.yaml), given to XLA
    for column in prov.PROVENANCE_COLUMNS:  # the job's provenance is in its metrics CSV
        assert (metrics[column].astype(str) == record[column]).all(), column
