"""Snakemake script of rule plot_performance: Fig. 1 / S1 / S2 (ACC, ECE, NLL over epochs)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.io import read_csv
from bmrsparse.plots import plot_performance, save_figure

metrics = read_csv(snakemake.input.metrics)
save_figure(plot_performance(metrics, snakemake.params.dataset), snakemake.output.pdf, snakemake.output.png)
