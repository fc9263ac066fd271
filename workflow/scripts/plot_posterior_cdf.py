"""Snakemake script of rule plot_posterior_cdf: Fig. 3 (per-layer CDF of |E[w]|, methods overlaid)."""

import os
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

if snakemake.config.get("jax_cache_dir"):  # speed only: reuse the programs the training jobs compiled
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.experiment import posterior_summaries
from bmrsparse.plots import plot_posterior_cdf, save_figure

summaries = posterior_summaries(snakemake.params.panels, snakemake.input.posteriors, snakemake.input.data)
save_figure(plot_posterior_cdf(summaries), snakemake.output.pdf, snakemake.output.png)
