# Tidy per-epoch metrics of every training stage, the timing of claim 4, the final-metrics table and the
# paper-claims table.

#: Claim 4's timing (rule time_steps; SPEED_METHODS in common.smk), when the grid has both methods.
SPEED_TIMING = {"timing": "results/bench/speed.csv"} if all(m in METHODS for m in SPEED_METHODS) else {}
#: The config files in the order they were merged: the Snakefile's default, then those of --configfile.
#: (Compared as absolute paths: `make reproduce` names config/config.yaml both ways; it is listed once.)
_OVERWRITE = [str(f) for f in workflow.overwrite_configfiles or ()]
_OVERWRITE_ABS = {os.path.abspath(f) for f in _OVERWRITE}
CONFIG_FILES = [str(f) for f in workflow.configfiles if os.path.abspath(f) not in _OVERWRITE_ABS] + _OVERWRITE


rule collect_metrics:
    input:
        metrics_files(),
    output:
        metrics=report(
            "results/metrics/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "per-epoch metrics", "format": "CSV"},
        ),
        metrics_sha256="results/metrics/metrics.csv.sha256",  # checked by its readers (bmrsparse.io)
    log:
        "logs/collect_metrics.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        parts=metrics_parts(),
    script:
        "../scripts/collect_metrics.py"


rule time_steps:
    input:
        # Every training job must have finished: no training job of this workflow runs beside it.
        metrics="results/metrics/metrics.csv",
    output:
        timing=report(
            "results/bench/speed.csv",
            caption="../report/speed.rst",
            category="Tables",
            labels={"table": "step speed, timed alone", "format": "CSV"},
        ),
        timing_sha256="results/bench/speed.csv.sha256",
    log:
        "logs/time_steps.log",
    conda:
        TRAIN_ENV  # the training jobs' environment: JAX's CUDA build when they ask for a GPU
    # A job of its own with a training job's resources: on a cluster (profiles/slurm) it goes to a node like
    # theirs, not the login node; its `threads` size XLA's CPU thread pools as in training (limit_threads).
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        mem_mb=max(config["resources"]["mem_mb"][arch] for arch in ARCHS),  # the largest timed network's
        runtime=timing_runtime,
    params:
        datasets=DATASETS,
        archs=ARCHS,
        methods=SPEED_METHODS,
        settings={a: {m: job_settings(m, a) for m in SPEED_METHODS} for a in ARCHS},
        steps=TIMING_STEPS,
        epoch_steps=EPOCH_STEPS,
        repeats=TIMING_REPEATS,
    script:
        "../scripts/time_steps.py"


rule tables:
    input:
        **SPEED_TIMING,
        **({"inference": "results/tables/inference.csv"} if inference_targets() else {}),  # claim 6 (inference.smk)
        metrics="results/metrics/metrics.csv",
    output:
        final_csv=report(
            "results/tables/final_metrics.csv",
            caption="../report/final_metrics.rst",
            category="Tables",
            labels={"table": "final metrics", "format": "CSV"},
        ),
        final_md=report(
            "results/tables/final_metrics.md",
            caption="../report/final_metrics.rst",
            category="Tables",
            labels={"table": "final metrics", "format": "Markdown"},
        ),
        claims_csv=report(
            "results/tables/paper_claims.csv",
            caption="../report/paper_claims.rst",
            category="Tables",
            labels={"table": "paper claims", "format": "CSV"},
        ),
        claims_md=report(
            "results/tables/paper_claims.md",
            caption="../report/paper_claims.rst",
            category="Tables",
            labels={"table": "paper claims", "format": "Markdown"},
        ),
    log:
        "logs/tables.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        acc_tolerance=config["claims"]["acc_tolerance"],
        pruned_threshold=config["claims"]["pruned_threshold"],
        configfiles=[os.path.relpath(f) if os.path.isabs(f) else f for f in CONFIG_FILES],
    script:
        "../scripts/make_tables.py"


# Which library code, software versions and device produced each training job (read back from its metrics CSV).
rule provenance:
    input:
        metrics_files(),
    output:
        csv=report(
            "results/tables/provenance.csv",
            caption="../report/provenance.rst",
            category="Tables",
            labels={"table": "provenance", "format": "CSV"},
        ),
        md=report(
            "results/tables/provenance.md",
            caption="../report/provenance.rst",
            category="Tables",
            labels={"table": "provenance", "format": "Markdown"},
        ),
    log:
        "logs/provenance.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        library=LIBRARY_DIGEST,
    script:
        "../scripts/provenance_table.py"
