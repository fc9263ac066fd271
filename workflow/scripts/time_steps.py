"""Snakemake script of rule time_steps: SVI steps per second of Tiered-FF and BMR-S&S, timed alone (claim 4).

The rule runs after every training job (it needs the collected metrics) as a job of its own with a training job's
resources (its `threads`, GPU and memory; under the SLURM profile an sbatch job on a node like theirs). Each
(dataset, arch) is timed with ``bmrsparse.bench.bench_one`` on synthetic images of the data set's shape, with the
training jobs' own settings of that method, in the order Tiered-FF, BMR-S&S, BMR-S&S, Tiered-FF, ... (``repeats``
runs of each, interleaved so that a drift of the machine's speed affects both alike; each method compiled once,
its later runs start from a fresh initial state with the compiled step kept).
"""

import os
import sys

log = open(snakemake.log[0], "w", buffering=1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
sys.stdout = sys.stderr = log

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if snakemake.config.get("jax_cache_dir"):  # speed only: reuse compiled programs
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.provenance import check_accelerator, device_description, limit_threads, xla_threads

# As in the training jobs: XLA's CPU thread pools get the job's `threads`, before JAX starts; a job the scheduler
# gave a GPU stops if JAX has none (a CPU timing would be compared with GPU training).
limit_threads(snakemake.threads)
check_accelerator(resources_gpu=int(getattr(snakemake.resources, "gpu", 0) or 0))
print(f"device: {device_description()}, {snakemake.threads} thread(s)", flush=True)

import pandas as pd

from bmrsparse.bench import bench_one
from bmrsparse.io import atomic_write_verified

params = snakemake.params
rows = []
for dataset in params.datasets:
    for arch in params.archs:
        order = []
        for r in range(params.repeats):
            order += list(params.methods) if r % 2 == 0 else list(reversed(params.methods))
        for run, method in enumerate(order):
            row = bench_one(dataset, arch, method, steps=params.steps, epoch_steps=params.epoch_steps,
                            settings=params.settings[arch][method], reuse=True)
            row.update(run=run, threads=snakemake.threads, xla_threads=xla_threads())
            rows.append(row)
            print(f"{dataset} {arch} {method}: {row['steps_per_s']:.1f} steps/s ({row['device']})", flush=True)
atomic_write_verified(snakemake.output.timing, pd.DataFrame(rows).to_csv(index=False))
