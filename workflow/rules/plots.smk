# Figures named after the paper's numbering, each as PDF and PNG and in the report.


rule plot_performance:
    input:
        metrics="results/metrics/metrics.csv",
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/performance.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PDF"},
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/performance.rst",
            category="Figures",
            subcategory="Performance",
            labels={"figure": "{figure}", "format": "PNG"},
        ),
    log:
        "logs/plot_performance/{figure}.log",
    wildcard_constraints:
        figure="|".join(PERFORMANCE_FIGURES[d] for d in DATASETS),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=lambda wildcards: {v: k for k, v in PERFORMANCE_FIGURES.items()}[wildcards.figure],
    script:
        "../scripts/plot_performance.py"


def authors_reference(wildcards):
    """The authors' side-by-side runs, as Fig. 2's input when BMR-S&S runs on their schedule and settings for at least
    one configured architecture (bmrsparse.reference); else nothing, and Fig. 2 has no reference band."""
    from bmrsparse.reference import AUTHORS_RUNS, AUTHORS_SCHEDULE, schedule_mismatch

    if AUTHORS_SCHEDULE["method"] not in config["methods"]:
        return []
    comparable = [arch for arch in config["archs"] if not schedule_mismatch(config, arch)]
    return [str(AUTHORS_RUNS)] if comparable else []


rule plot_pruned_fraction:
    input:
        metrics="results/metrics/metrics.csv",
        reference=authors_reference,
    output:
        pdf=report(
            "results/figures/fig2.pdf",
            caption="../report/fig2.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig2", "format": "PDF"},
        ),
        png=report(
            "results/figures/fig2.png",
            caption="../report/fig2.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig2", "format": "PNG"},
        ),
    log:
        "logs/plot_pruned_fraction.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_pruned_fraction.py"


rule plot_posterior_cdf:
    input:
        data=data_path(POSTERIOR_FIGURE_DATASET),
        posteriors=posterior_files(),
    output:
        pdf=report(
            "results/figures/fig3.pdf",
            caption="../report/fig3.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig3", "format": "PDF"},
        ),
        png=report(
            "results/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig3", "format": "PNG"},
        ),
    log:
        "logs/plot_posterior_cdf.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=posterior_panels(),
    script:
        "../scripts/plot_posterior_cdf.py"


rule plot_first_layer:
    input:
        data=data_path(POSTERIOR_FIGURE_DATASET),
        posteriors=posterior_files(),
    output:
        pdf=report(
            "results/figures/fig4.pdf",
            caption="../report/fig4.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig4", "format": "PDF"},
        ),
        png=report(
            "results/figures/fig4.png",
            caption="../report/fig4.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "fig4", "format": "PNG"},
        ),
    log:
        "logs/plot_first_layer.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        panels=posterior_panels(),
    script:
        "../scripts/plot_first_layer.py"
