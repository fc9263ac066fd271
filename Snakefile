# bmrsparse: reproduce the figures of "Bayesian sparsification for deep neural networks with Bayesian model
# reduction" (Markovic, Friston, Kiebel 2023).
#
#   snakemake --cores all                                   # the quick default profile (config/config.yaml)
#   snakemake --cores all --configfile config/paper.yaml    # the paper's full grid
#   snakemake --report results/report.html                  # afterwards: every figure and table in one report
#
# Rules live in workflow/rules/, their scripts in workflow/scripts/, the config schema in workflow/schemas/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/sparsity.smk"
include: "workflow/rules/inference.smk"


# Light rules run on the submitting host even under a cluster executor (--profile profiles/slurm).
localrules:
    all,
    prepare_dataset,
    collect_metrics,
    tables,
    plot_performance,
    plot_pruned_fraction,
    plot_posterior_cdf,
    plot_first_layer,
    plot_sparsity_accuracy,


rule all:
    input:
        GRID.final_targets(),
