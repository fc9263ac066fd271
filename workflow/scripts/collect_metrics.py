"""Snakemake script of rule collect_metrics: one tidy CSV of every stage's per-epoch metrics."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

from bmrsparse.io import atomic_write_verified
from bmrsparse.workflow.tables import collect_metrics, read_metrics

tidy = collect_metrics(read_metrics(path, as_method=method) for path, method in snakemake.params.parts)
atomic_write_verified(snakemake.output.metrics, tidy.to_csv(index=False))
print(f"{len(tidy)} rows from {len(snakemake.params.parts)} stages -> {snakemake.output.metrics}")
