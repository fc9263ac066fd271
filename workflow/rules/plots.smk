# Figures: every registered figure (bmrsparse.figures) that applies to the configured grid, each as PDF and PNG and in
# the report. A figure's declaration names its rule (Figure.rule), what it reads (Figure.reads: the metrics table or
# the final posteriors of its panels, input function figure_inputs in common.smk), its caption and its drawing
# function; every rule here runs the same script, which draws the figure named by the {figure} wildcard. The rules
# differ only in their names and memory (the paper's figures keep their rules); the sparsity-accuracy figure is
# drawn in sparsity.smk.


# Fig. 1 / S1 / S2 and every registered dataset's performance figure (bmrsparse.data.DatasetInfo.figure)
rule plot_performance:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_performance/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("plot_performance"),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        panels=lambda wildcards: figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURE_INFO[wildcards.figure].caption,
        schedule=config["schedule"],
    script:
        "../scripts/plot_figure.py"


# Fig. 2
rule plot_pruned_fraction:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_pruned_fraction/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("plot_pruned_fraction"),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        panels=lambda wildcards: figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURE_INFO[wildcards.figure].caption,
        schedule=config["schedule"],
    script:
        "../scripts/plot_figure.py"


# Fig. 3
rule plot_posterior_cdf:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_posterior_cdf/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("plot_posterior_cdf"),
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURE_INFO[wildcards.figure].caption,
        schedule=config["schedule"],
    script:
        "../scripts/plot_figure.py"


# Fig. 4
rule plot_first_layer:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_first_layer/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("plot_first_layer"),
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURE_INFO[wildcards.figure].caption,
        schedule=config["schedule"],
    script:
        "../scripts/plot_figure.py"


# every figure declared without a rule of its own (Figure.rule = "plot_figure"), e.g. a plug-in's
rule plot_figure:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="Beyond the paper",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_figure/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("plot_figure"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=lambda wildcards: figure_panels(wildcards.figure),
        caption=lambda wildcards: FIGURE_INFO[wildcards.figure].caption,
        schedule=config["schedule"],
    script:
        "../scripts/plot_figure.py"
