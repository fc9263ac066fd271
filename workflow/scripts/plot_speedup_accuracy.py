"""Snakemake script of rule plot_speedup_accuracy: accuracy against measured inference speed-up."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from bmrsparse.inference import plot_speedup_accuracy
from bmrsparse.plots import save_figure

table = pd.read_csv(snakemake.input.table)
save_figure(plot_speedup_accuracy(table), snakemake.output.pdf, snakemake.output.png)
