"""Snakemake script of the figure rules (plots.smk): draws the registered figure named by the {figure} wildcard from
what its declaration reads (bmrsparse.figures)."""

import os
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from bmrsparse.provenance import limit_threads

limit_threads(snakemake.threads)  # NumPy's BLAS and XLA's CPU pools: the job's `threads`, before they start

if snakemake.config.get("jax_cache_dir"):  # speed only: reuse the programs the training jobs compiled
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(snakemake.config["jax_cache_dir"]))

from bmrsparse.figures import draw_figure, get_figure
from bmrsparse.io import read_csv
from bmrsparse.plots import save_figure
from bmrsparse.workflow import Config
from bmrsparse.workflow.figures import draw_arguments

name = snakemake.wildcards.figure
if get_figure(name).reads == "posteriors":
    from bmrsparse.experiment import posterior_summaries

    data = posterior_summaries(snakemake.params.panels, snakemake.input.posteriors, snakemake.input.data)
else:
    data = read_csv(snakemake.input.metrics)
# what the workflow adds to the figure's data (Fig. 2: the authors' range, when the run is comparable to it)
extra = draw_arguments(name, dict(snakemake.input.items()), Config.from_mapping(snakemake.config))
save_figure(draw_figure(name, data, **extra), snakemake.output.pdf, snakemake.output.png)
