"""Snakemake script of rule plot_pruned_fraction: Fig. 2 (fraction of weights BMR-S&S pruned)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.io import read_csv
from bmrsparse.plots import plot_pruned_fraction, save_figure

metrics = read_csv(snakemake.input.metrics)
save_figure(plot_pruned_fraction(metrics), snakemake.output.pdf, snakemake.output.png)
