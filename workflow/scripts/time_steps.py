"""Snakemake script of rule time_steps: SVI steps per second of Tiered-FF and BMR-S&S, timed alone (claim 4).

The rule runs after every training job (it needs the collected metrics) with all the workflow's cores, so nothing
else shares the machine. Each (dataset, arch) is timed with ``bmrsparse.bench.bench_one`` on synthetic images of
the data set's shape, with the same settings as the workflow's training jobs of that method, in the order
Tiered-FF, BMR-S&S, BMR-S&S, Tiered-FF, ... (``repeats`` runs of each, interleaved so that a drift of the
machine's speed affects both alike).
"""

import os
import sys
from unittest import mock

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)
if snakemake.config.get("jax_cache_dir"):  # speed only: reuse compiled programs
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

import pandas as pd

from bmrsparse import bench
from bmrsparse.experiment import resolve_settings
from bmrsparse.io import atomic_write_verified

params = snakemake.params
rows = []
for dataset in params.datasets:
    for arch in params.archs:
        order = []
        for r in range(params.repeats):
            order += list(params.methods) if r % 2 == 0 else list(reversed(params.methods))
        for run, method in enumerate(order):
            job = params.settings[arch][method]
            # bench_one builds its settings from batch size and network size only; give it the training job's.
            with mock.patch.object(bench, "resolve_settings", lambda _overrides, job=job: resolve_settings(job)):
                row = bench.bench_one(dataset, arch, method, steps=params.steps, epoch_steps=params.epoch_steps,
                                      tiny=False, batch_size=job["batch_size"])
            row.update(run=run, threads=snakemake.threads)
            rows.append(row)
            print(f"{dataset} {arch} {method}: {row['steps_per_s']:.1f} steps/s ({row['device']})")
atomic_write_verified(snakemake.output.timing, pd.DataFrame(rows).to_csv(index=False))
