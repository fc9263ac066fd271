# Beyond the paper (issues 21, 29): what pruning buys at inference time. The final posterior of every structured
# method (Method.structured: the BMR methods that remove whole units, and Tiered-FF, cut by its own unit scales) of
# each MLP and LeNet-5 is exported as a compact network (rule compact_network: .npz + JSON, loadable with numpy
# alone), then one job times every posterior-mean network (dense Flat-FF, the pruned methods masked, BMR-S&S as BCOO,
# the compact networks) after all training has finished (rule inference), with each method's training steps and
# seconds from the metrics, and the figure puts accuracy against measured speed-up. The targets and the grid
# (GRID.has_inference, GRID.inference_grid) exist when the grid has flat_ff, a structured method and a network with a
# compact form (bmrsparse.compact.compact_networks: the MLP and LeNet-5).


rule compact_network:
    input:
        data=get_data,
        posterior=get_final_posterior(),
    output:
        npz="results/compact/{dataset}/{arch}/{method}/seed{seed}.npz",
        json="results/compact/{dataset}/{arch}/{method}/seed{seed}.json",
    log:
        "logs/compact_network/{dataset}/{arch}/{method}/seed{seed}.log",
    wildcard_constraints:
        arch="|".join(GRID.inference_archs()) or NOTHING,
        method="|".join(GRID.compact_methods()) or NOTHING,
    # CPU work (no GPU asked): the CPU environment
    conda:
        ENV
    resources:
        mem_mb=train_mem_mb,
        runtime=lambda wildcards, attempt: CFG.resources.overhead_minutes * attempt,
    params:
        library=LIBRARY_DIGEST,
    script:
        "../scripts/compact_network.py"


rule inference:
    input:
        **GRID.inference_inputs(),
        # Every training job must have finished, and claim 4's timing (rule time_steps, when the grid has it): then
        # this job has the machine to itself (the two timing jobs side by side slowed each other: the dense MLP at
        # batch 128 read 3.25 ms beside time_steps, docs/quick-profile/2026-12-07-quiet/).
        **SPEED_TIMING,
        metrics=GRID.metrics,
    output:
        table=report(
            GRID.inference_table,
            caption="../report/inference.rst",
            category="Tables",
            labels={"table": "measured inference", "format": "CSV"},
        ),
    log:
        "logs/inference.log",
    conda:
        TRAIN_ENV
    # A GPU job's threads (resources.threads), as claim 4's timing: not the submitting host's core count, which on a
    # cluster would ask for a login node's every core; the script bounds XLA's and NumPy's thread pools to them.
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        mem_mb=max(CFG.resources.mem_mb.values()),
        runtime=lambda wildcards, attempt: CFG.resources.overhead_minutes * 3 * attempt,
    params:
        library=LIBRARY_DIGEST,
        grid=GRID.inference_grid(),
        batches=[1, 128, 1024],
        repeats=15,
    script:
        "../scripts/inference.py"


rule plot_speedup_accuracy:
    input:
        table=GRID.inference_table,
    output:
        pdf=report(
            f"{SUMMARY}/figures/speedup_accuracy.pdf",
            caption="../report/speedup_accuracy.rst",
            category="Figures",
            subcategory="Inference",
            labels={"figure": "speedup_accuracy", "format": "PDF"},
        ),
        png=report(
            f"{SUMMARY}/figures/speedup_accuracy.png",
            caption="../report/speedup_accuracy.rst",
            category="Figures",
            subcategory="Inference",
            labels={"figure": "speedup_accuracy", "format": "PNG"},
        ),
    log:
        "logs/plot_speedup_accuracy.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_speedup_accuracy.py"
