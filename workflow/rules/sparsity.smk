# Beyond the paper: the sparsity-accuracy figure. The final Flat-FF posterior of each (dataset, architecture, seed)
# is pruned by three scores at about ten fractions and evaluated without retraining (no training: a few
# evaluations per job); the figure overlays the final epochs of BMR-S&S and of the pruning baselines.

from bmrsparse.sparsity import FRACTIONS as SPARSITY_FRACTIONS  # fractions of the non-output weights removed


rule sparsity_curve:
    input:
        data=get_data,
        posterior=get_final_posterior("flat_ff"),
    output:
        curve="results/sparsity/{dataset}/{arch}/seed{seed}.csv",
        curve_sha256="results/sparsity/{dataset}/{arch}/seed{seed}.csv.sha256",  # checked by its readers
    log:
        "logs/sparsity_curve/{dataset}/{arch}/seed{seed}.log",
    benchmark:
        "benchmarks/sparsity_curve/{dataset}/{arch}/seed{seed}.tsv"
    conda:
        TRAIN_ENV
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        runtime=lambda wildcards, attempt: CFG.resources.overhead_minutes * 3 * attempt,
        mem_mb=train_mem_mb,
    params:
        library=LIBRARY_DIGEST,
        fractions=list(SPARSITY_FRACTIONS),
        settings={
            "num_eval_samples": CFG.evaluation.num_samples,
            "test_subset": CFG.evaluation.test_subset,
            "eval_batch_size": CFG.evaluation.eval_batch_size,
        },
    script:
        "../scripts/sparsity_curve.py"


rule plot_sparsity_accuracy:
    input:
        curves=GRID.sparsity_curves(),
        metrics=GRID.metrics,
    output:
        pdf=report(
            f"{SUMMARY}/figures/sparsity_accuracy.pdf",
            caption="../report/sparsity_accuracy.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "sparsity_accuracy", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/sparsity_accuracy.png",
            caption="../report/sparsity_accuracy.rst",
            category="Figures",
            subcategory="Sparsity",
            labels={"figure": "sparsity_accuracy", "format": "PNG"},
        ),
    log:
        "logs/plot_sparsity_accuracy.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_sparsity_accuracy.py"
