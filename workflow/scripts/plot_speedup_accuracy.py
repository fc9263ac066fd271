"""Snakemake script of rule plot_speedup_accuracy: accuracy against measured inference speed-up."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from bmrsparse.plots import plot_speedup_accuracy, save_figure

table = pd.read_csv(snakemake.input.table)
save_figure(plot_speedup_accuracy(table), snakemake.output.pdf, snakemake.output.png)
