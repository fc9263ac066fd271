# Tidy per-epoch metrics of every training stage, the timing of claim 4, the final-metrics table and the
# paper-claims table; like the figures, in the run's summary folder (SUMMARY: results/, or results/subsets/<name>/
# for a run whose --config leaves out part of the config files' grid; bmrsparse.workflow.paths.summary_dir).

#: Claim 4's timing (rule time_steps; bmrsparse.workflow.jobs.SPEED_METHODS), when the grid has both methods.
SPEED_TIMING = {"timing": GRID.timing} if GRID.has_timing() else {}


rule collect_metrics:
    input:
        GRID.metrics_files(),
    output:
        metrics=report(
            GRID.metrics,
            caption="../report/metrics.rst",
            category="Tables",
            labels={"table": "per-epoch metrics", "format": "CSV"},
        ),
        metrics_sha256=f"{GRID.metrics}.sha256",  # checked by its readers (bmrsparse.io)
    log:
        "logs/collect_metrics.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        parts=GRID.metrics_parts(),
    script:
        "../scripts/collect_metrics.py"


rule time_steps:
    input:
        # Every training job must have finished: no training job of this workflow runs beside it.
        metrics=GRID.metrics,
    output:
        timing=report(
            GRID.timing,
            caption="../report/speed.rst",
            category="Tables",
            labels={"table": "step speed, timed alone", "format": "CSV"},
        ),
        timing_sha256=f"{GRID.timing}.sha256",
    log:
        "logs/time_steps.log",
    conda:
        TRAIN_ENV  # the training jobs' environment: JAX's CUDA build when they ask for a GPU
    # A job of its own with a training job's resources: on a cluster (profiles/slurm) it goes to a node like
    # theirs, not the login node; its `threads` size XLA's CPU thread pools as in training (limit_threads).
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        mem_mb=max(CFG.resources.mem_mb[arch] for arch in CFG.archs),  # the largest timed network's
        runtime=timing_runtime,
    params:
        datasets=list(CFG.datasets),
        archs=list(CFG.archs),
        methods=SPEED_METHODS,
        settings={a: {m: GRID.job_settings(m, a) for m in SPEED_METHODS} for a in CFG.archs},
        steps=timing_steps(CFG.schedule.epoch_steps),
        epoch_steps=CFG.schedule.epoch_steps,
        repeats=TIMING_REPEATS,
    script:
        "../scripts/time_steps.py"


rule tables:
    input:
        **SPEED_TIMING,
        **({"inference": GRID.inference_table} if GRID.has_inference() else {}),  # claim 6 (inference.smk)
        metrics=GRID.metrics,
    output:
        final_csv=report(
            f"{SUMMARY}/tables/final_metrics.csv",
            caption="../report/final_metrics.rst",
            category="Tables",
            labels={"table": "final metrics", "format": "CSV"},
        ),
        final_md=report(
            f"{SUMMARY}/tables/final_metrics.md",
            caption="../report/final_metrics.rst",
            category="Tables",
            labels={"table": "final metrics", "format": "Markdown"},
        ),
        claims_csv=report(
            f"{SUMMARY}/tables/paper_claims.csv",
            caption="../report/paper_claims.rst",
            category="Tables",
            labels={"table": "paper claims", "format": "CSV"},
        ),
        claims_md=report(
            f"{SUMMARY}/tables/paper_claims.md",
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
        acc_tolerance=CFG.claims.acc_tolerance,
        pruned_threshold=CFG.claims.pruned_threshold,
        configfiles=CONFIG_FILES,
    script:
        "../scripts/make_tables.py"


# Which library code, software versions and device produced each training job (read back from its metrics CSV).
rule provenance:
    input:
        GRID.metrics_files(),
    output:
        csv=report(
            f"{SUMMARY}/tables/provenance.csv",
            caption="../report/provenance.rst",
            category="Tables",
            labels={"table": "provenance", "format": "CSV"},
        ),
        md=report(
            f"{SUMMARY}/tables/provenance.md",
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
