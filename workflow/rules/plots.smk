# Figures: every registered figure (bmrsparse.figures) that applies to the configured grid, each as PDF and PNG and in
# the report. A figure's declaration says what it reads (Figure.reads: the metrics table or the final posteriors of
# its panels; input function get_figure_inputs), its caption and its drawing function; which rule draws it is the
# workflow's (bmrsparse.workflow.figures.figure_rule: the paper's figures keep rules of their own). Every rule here
# runs the same script, which draws the figure named by the {figure} wildcard; the rules differ only in their names
# and memory. The sparsity-accuracy figure is drawn in sparsity.smk.


# Fig. 1 / S1 / S2 and every registered dataset's performance figure (bmrsparse.data.DatasetInfo.figure)
rule plot_performance:
    input:
        unpack(get_figure_inputs),
    output:
        pdf=report(
            f"{SUMMARY}/figures/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_performance/{figure}.log",
    wildcard_constraints:
        figure=GRID.figures_regex("plot_performance"),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        panels=lambda wildcards: GRID.figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        schedule=CFG.schedule.as_dict(),
    script:
        "../scripts/plot_figure.py"


# Fig. 2
rule plot_pruned_fraction:
    input:
        unpack(get_figure_inputs),
    output:
        pdf=report(
            f"{SUMMARY}/figures/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_pruned_fraction/{figure}.log",
    wildcard_constraints:
        figure=GRID.figures_regex("plot_pruned_fraction"),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        panels=lambda wildcards: GRID.figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        schedule=CFG.schedule.as_dict(),
    script:
        "../scripts/plot_figure.py"


# Fig. 3
rule plot_posterior_cdf:
    input:
        unpack(get_figure_inputs),
    output:
        pdf=report(
            f"{SUMMARY}/figures/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_posterior_cdf/{figure}.log",
    wildcard_constraints:
        figure=GRID.figures_regex("plot_posterior_cdf"),
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: GRID.figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        schedule=CFG.schedule.as_dict(),
    script:
        "../scripts/plot_figure.py"


# Fig. 4
rule plot_first_layer:
    input:
        unpack(get_figure_inputs),
    output:
        pdf=report(
            f"{SUMMARY}/figures/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_first_layer/{figure}.log",
    wildcard_constraints:
        figure=GRID.figures_regex("plot_first_layer"),
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: GRID.figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        schedule=CFG.schedule.as_dict(),
    script:
        "../scripts/plot_figure.py"


# every other registered figure, e.g. a plug-in's
rule plot_figure:
    input:
        unpack(get_figure_inputs),
    output:
        pdf=report(
            f"{SUMMARY}/figures/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_figure/{figure}.log",
    wildcard_constraints:
        figure=GRID.figures_regex("plot_figure"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: GRID.figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        schedule=CFG.schedule.as_dict(),
    script:
        "../scripts/plot_figure.py"
