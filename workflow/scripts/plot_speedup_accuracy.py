"""Snakemake script of rule plot_speedup_accuracy: accuracy against measured inference speed-up."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

import pandas as pd

from bmrsparse.plots import plot_speedup_accuracy, save_figure

table = pd.read_csv(snakemake.input.table)
save_figure(plot_speedup_accuracy(table), snakemake.output.pdf, snakemake.output.png)
