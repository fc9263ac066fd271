"""Snakemake script of rule plot_pruned_fraction: Fig. 2 (fraction of weights BMR-S&S pruned), with the authors'
range behind our curves when the run is comparable to it (bmrsparse.reference)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.io import read_csv
from bmrsparse.plots import plot_pruned_fraction, save_figure
from bmrsparse.reference import AUTHORS_SCHEDULE, authors_band, read_runs, schedule_mismatch

metrics = read_csv(snakemake.input.metrics)
reference = None
if snakemake.input.reference:
    runs = read_runs(snakemake.input.reference[0])
    drawn = []
    for arch in sorted(set(runs["arch"]) & set(snakemake.config["archs"])):
        why = schedule_mismatch(snakemake.config, arch)
        print(f"authors' range for {arch}: " + ("drawn" if not why else "not drawn: " + "; ".join(why)))
        if not why:
            drawn.append(arch)
    band = authors_band(runs)
    reference = {AUTHORS_SCHEDULE["dataset"]: band[band["arch"].isin(drawn)]}
else:
    print("authors' range not drawn: BMR-S&S does not run on the authors' schedule and settings here")
save_figure(plot_pruned_fraction(metrics, reference), snakemake.output.pdf, snakemake.output.png)
