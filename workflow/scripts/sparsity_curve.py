"""Snakemake script of rule sparsity_curve: prune the final Flat-FF posterior by each score, evaluate, no training."""

import os
import sys

log = open(snakemake.log[0], "w", buffering=1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stdout = sys.stderr = log

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if snakemake.config.get("jax_cache_dir"):
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

import time

from bmrsparse.provenance import check_accelerator, device_description, limit_threads

limit_threads(snakemake.threads)  # XLA's CPU thread pools: the job's `threads`, before JAX starts

# As in the training jobs: a job the scheduler gave a GPU stops if JAX has none (no silent CPU fallback).
check_accelerator(resources_gpu=int(getattr(snakemake.resources, "gpu", 0) or 0))
print(f"device: {device_description()}", flush=True)

from bmrsparse.io import atomic_write_verified
from bmrsparse.sparsity import sparsity_curve

t0 = time.perf_counter()
curve = sparsity_curve(snakemake.input.posterior, snakemake.input.data, fractions=snakemake.params.fractions,
                       settings=snakemake.params.settings)
print(curve.to_string(index=False), flush=True)
print(f"{len(curve)} rows in {time.perf_counter() - t0:.1f} s", flush=True)
atomic_write_verified(snakemake.output.curve, curve.to_csv(index=False))
