"""Snakemake script of rule plot_first_layer: Fig. 4 (heat maps of first-layer posterior means)."""

import os
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

if snakemake.config.get("jax_cache_dir"):  # speed only: reuse the programs the training jobs compiled
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.experiment import posterior_summaries
from bmrsparse.plots import plot_first_layer, save_figure

summaries = posterior_summaries(snakemake.params.panels, snakemake.input.posteriors, snakemake.input.data)
save_figure(plot_first_layer(summaries), snakemake.output.pdf, snakemake.output.png)
