"""Snakemake script of rule provenance: which library code, software versions and device produced each job's
metrics (read back from the metrics CSVs), as CSV and Markdown."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

from bmrsparse.workflow.provenance import provenance_table
from bmrsparse.workflow.tables import write_table

table = provenance_table(snakemake.input)
planned = snakemake.params.library
stale = table[table.library != planned]
note = (f"Library digest of this workflow: {planned}. "
        + (f"{len(stale)} job(s) were produced by other library code: {', '.join(stale.job)}." if len(stale)
           else "Every job was produced by it."))
write_table(table, snakemake.output.csv, snakemake.output.md, title="What produced each training job", note=note)
print(note)
print(table.to_string())
