"""Snakemake script of rule tables: final metrics and the paper-claims table, as CSV and Markdown."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from bmrsparse.tables import final_metrics, paper_claims, write_table

metrics = pd.read_csv(snakemake.input.metrics)
final = final_metrics(metrics)
write_table(final, snakemake.output.final_csv, snakemake.output.final_md,
            title="Final metrics per dataset x architecture x method")
claims = paper_claims(metrics, acc_tolerance=snakemake.params.acc_tolerance,
                      pruned_threshold=snakemake.params.pruned_threshold)
write_table(claims, snakemake.output.claims_csv, snakemake.output.claims_md,
            title="The paper's claims, judged on these numbers")
print(claims.to_string())
