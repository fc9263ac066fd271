"""Snakemake script of rule tables: final metrics and the paper-claims table, as CSV and Markdown.

Both tables name the settings that produced them (config files, seeds, schedule, learning rates...): a line under
the Markdown title and, in the claims CSV, a ``settings`` column. Claim 4 reads the timing taken alone (rule
time_steps) when the grid has both Tiered-FF and BMR-S&S.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

import pandas as pd

from bmrsparse.io import atomic_write_text, read_csv
from bmrsparse.workflow.claims import paper_claims
from bmrsparse.workflow.tables import describe_settings, final_metrics, to_markdown, write_table

metrics = read_csv(snakemake.input.metrics)
note = f"Settings: {describe_settings(snakemake.config, snakemake.params.configfiles)}."
final = final_metrics(metrics)
write_table(final, snakemake.output.final_csv, snakemake.output.final_md,
            title="Final metrics per dataset x architecture x method", note=note)
timing = read_csv(snakemake.input.timing) if "timing" in snakemake.input.keys() else None
inference = pd.read_csv(snakemake.input.inference) if "inference" in snakemake.input.keys() else None  # claim 6
claims = paper_claims(metrics, acc_tolerance=snakemake.params.acc_tolerance,
                      pruned_threshold=snakemake.params.pruned_threshold, timing=timing, inference=inference)
atomic_write_text(snakemake.output.claims_csv, claims.assign(settings=note[len("Settings: "):-1]).to_csv(index=False))
atomic_write_text(snakemake.output.claims_md,
                  to_markdown(claims, title="The paper's claims, judged on these numbers", note=note))
print(note)
print(claims.to_string())
