"""Snakemake script of rule prepare_dataset: find, verify and convert one dataset into an .npz."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

from bmrsparse.data import prepare_dataset
from bmrsparse.provenance import library_digest

prepare_dataset(
    snakemake.wildcards.dataset,
    snakemake.output.data,
    source_dir=snakemake.params.source_dir,
    download=snakemake.params.download,
)
print(f"wrote {snakemake.output.data} with bmrsparse {library_digest()} (planned for {snakemake.params.library})")
