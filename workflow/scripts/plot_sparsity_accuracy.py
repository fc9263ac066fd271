"""Snakemake script of rule plot_sparsity_accuracy: ACC and NLL against the pruned fraction, pruned without
retraining (three scores) and retrained (BMR-S&S and the pruning baselines)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

import pandas as pd

from bmrsparse.io import read_csv
from bmrsparse.figures import draw_figure
from bmrsparse.plots import save_figure

curves = pd.concat([read_csv(path) for path in snakemake.input.curves], ignore_index=True)
metrics = read_csv(snakemake.input.metrics)
save_figure(draw_figure("sparsity_accuracy", curves, metrics=metrics), snakemake.output.pdf, snakemake.output.png)
