"""No silent CPU fallback: a job given a GPU by the scheduler but running a CPU-only JAX stops with the fix.

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
from bmrsparse.io import atomic_write_verified

GIVEN_GPU = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0", "SLURM_JOB_ID": "42"}


@pytest.mark.parametrize(
    "env, gpu, given",
    [
        ({}, 0, False),
        ({}, 1, False),  # a laptop run with the config's gpu: 1 keeps working
        ({"CUDA_VISIBLE_DEVICES": ""}, 1, False),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 0, False),
        ({"SLURM_JOB_ID": "7"}, 0, False),  # a CPU job on SLURM
        ({"CUDA_VISIBLE_DEVICES": "0"}, 0, True),
        ({"SLURM_JOB_GPUS": "1"}, 0, True),
        ({"SLURM_JOB_ID": "7"}, 1, True),  # resources.gpu >= 1 under the cluster executor
    ],
)
def test_scheduler_gpu_evidence(env, gpu, given):
    assert bool(prov.scheduler_gpus(env, gpu)) is given


def test_cpu_backend_with_a_gpu_is_refused_with_cause_and_fix():
    with pytest.raises(prov.GPUFallbackError) as err:
        prov.check_accelerator(GIVEN_GPU, resources_gpu=1, backend="cpu")
    message = str(err.value)
    for part in ("CUDA_VISIBLE_DEVICES=0", "JAX runs on the CPU", "'.[cuda]'", "--sdm conda", "resources.gpu: 0",
                 f"{prov.ALLOW_CPU_ENV}=1"):
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
    import flax
    import jax
    import numpyro

    assert (record["jax"], record["numpyro"], record["flax"]) == (jax.__version__, numpyro.__version__,
                                                                  flax.__version__)


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
    for column in prov.PROVENANCE_COLUMNS:  # the job's provenance is in its metrics CSV
        assert (metrics[column].astype(str) == record[column]).all(), column


def test_provenance_table_reads_each_jobs_record(tmp_path):
    record = {"library": "abc123", "device": "gpu: NVIDIA H100", "jax": "0.10.2", "jaxlib": "0.10.2",
              "numpyro": "0.22.0", "flax": "0.12.8"}
    new = tmp_path / "results" / "warmup" / "mlp" / "metrics.csv"
    old = tmp_path / "results" / "train" / "mlp" / "metrics.csv"
    new.parent.mkdir(parents=True)
    old.parent.mkdir(parents=True)
    atomic_write_verified(new, pd.DataFrame([{"epoch": 0, "acc": 0.5, **record}, {"epoch": 1, "acc": 0.6, **record}]).to_csv(index=False))
    atomic_write_verified(old, pd.DataFrame([{"epoch": 0, "acc": 0.5}]).to_csv(index=False))
    table = prov.provenance_table([new, old])
    assert table.job.tolist() == ["warmup/mlp", "train/mlp"]
    assert table.iloc[0].drop("job").to_dict() == record
    assert set(table.iloc[1].drop("job")) == {"not recorded"}
    atomic_write_verified(new, pd.DataFrame([{"epoch": 0, **record}, {"epoch": 1, **record, "device": "cpu: other"}]).to_csv(index=False))
    with pytest.raises(ValueError, match="more than one device"):
        prov.provenance_table([new])
