"""Snakemake script of rule inference: every posterior-mean network of the grid's MLPs and LeNet-5s timed per
format and batch size on this job's device, after all training (bmrsparse.inference.inference_table)."""

import os
import sys

log = open(snakemake.log[0], "w", buffering=1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stdout = sys.stderr = log

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if snakemake.config.get("jax_cache_dir"):  # speed of compilation only; the timed calls are compiled first
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.provenance import check_accelerator, device_description, limit_threads, xla_threads

# XLA's CPU thread pools and NumPy's BLAS get the job's `threads` (resources.threads), before they start.
limit_threads(snakemake.threads)
check_accelerator(resources_gpu=int(getattr(snakemake.resources, "gpu", 0) or 0))
print(f"device: {device_description()}; threads: {snakemake.threads}", flush=True)

import pandas as pd

from bmrsparse.io import atomic_write_text
from bmrsparse.inference import inference_table
from bmrsparse.state import read_state_header
from bmrsparse.workflow.tables import read_metrics, training_cost

metrics = read_metrics(snakemake.input.metrics)
tables = []
for data, states, exported in snakemake.params.grid:
    head = read_state_header(next(iter(states.values())))
    cost = training_cost(metrics, head["dataset"], head["arch"], int(head["seeds"][0]))
    table = inference_table(states, data, exported=exported, batches=snakemake.params.batches,
                            repeats=snakemake.params.repeats, training=cost)
    table["xla_threads"] = xla_threads()  # the size of XLA's CPU thread pools (the job's threads)
    print(table.to_string(index=False), flush=True)
    tables.append(table)
atomic_write_text(snakemake.output.table, pd.concat(tables, ignore_index=True).to_csv(index=False))
