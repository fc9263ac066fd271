# Training, generic over the methods registered in bmrsparse.methods: what a method declares decides which rule
# trains it and what that rule's inputs are (GRID, bmrsparse.workflow.grid).
#   train_warmup    a warm-up (epoch 0 of every method that declares start="warmup"), one per distinct warm-up
#                   settings and model: the shared Flat-FF warm-up at each learning rate the methods starting from it
#                   use (BMR-S&S at the authors' rate gets its own), shared by the methods with the same settings, and
#                   the own warm-up of a method that declares warmup_method=<its name> ({warmup}: their tag,
#                   bmrsparse.workflow.jobs.warmup_tag)
#   train_continue  start="warmup", one job for all epochs (Flat-FF)
#   train_scratch   start="scratch", one job for warm-up budget + all epochs (Flat-MAP, Tiered-FF)
#   train_epoch     per_epoch=True, one job per epoch (prune, train, evaluate): BMR-S&S and the pruning baselines;
#                   epoch k starts from the method's epoch k-1 (epoch 1 from the warm-up) and reads the declared
#                   reference method's state of epoch k
# Everything that changes a result is a param, so a change reruns exactly the affected jobs and the warm-up's
# between-workflow cache key (--cache) sees it.
# Priorities (speed only): the warm-ups first, as every later epoch waits for them, then the long from-scratch jobs,
# so that the short per-epoch jobs fill the cores at the end instead of one long job running alone.


rule train_warmup:
    input:
        data=get_data,
    output:
        posterior=per_seed("results/warmup/{dataset}/{arch}/{warmup}/seed{seed}/posterior.npz"),
        metrics=per_seed("results/warmup/{dataset}/{arch}/{warmup}/seed{seed}/metrics.csv"),
        # its SHA-256 (bmrsparse.io): readers refuse a damaged CSV; a declared output, so --cache keeps it
        metrics_sha256=per_seed("results/warmup/{dataset}/{arch}/{warmup}/seed{seed}/metrics.csv.sha256"),
    log:
        seed_tag("logs/train_warmup/{dataset}/{arch}/{warmup}/seed{seed}.log"),
    # No benchmark: Snakemake refuses one on a cached rule; the metrics CSV holds seconds and steps/s.
    cache: "omit-software"
    priority: 2
    conda:
        TRAIN_ENV
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        runtime=train_runtime(CFG.schedule.warmup_steps),
        mem_mb=train_mem_mb,
    params:
        # The cache key hashes params, not wildcards: name the job's wildcards here.
        dataset=lambda wildcards: wildcards.dataset,
        arch=lambda wildcards: wildcards.arch,
        warmup=lambda wildcards: wildcards.warmup,
        seed=job_seeds,
        # ... and the library code, so a changed library does not reuse an old cached warm-up
        library=LIBRARY_DIGEST,
        # the model it trains: Flat-FF's (the shared warm-up) or that of the method that warms up its own
        method=warmup_method_of,
        schedule=[CFG.schedule.warmup_steps],
        first_epoch=0,
        # the run's last epoch is evaluated as the authors do (evaluation.final_*)
        final_epoch=CFG.schedule.num_epochs,
        # Flat-FF's settings with the inherited ones (learning rate) of the methods that start from this warm-up
        settings=warmup_settings_of,
    script:
        "../scripts/train.py"


rule train_continue:
    input:
        data=get_data,
        init_state=get_warmup_posterior,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/metrics.csv"),
        # its SHA-256 (bmrsparse.io): readers refuse a damaged CSV; a declared output, so --cache keeps it
        metrics_sha256=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/metrics.csv.sha256"),
    log:
        seed_tag("logs/train_continue/{dataset}/{arch}/{method}/seed{seed}.log"),
    benchmark:
        seed_tag("benchmarks/train_continue/{dataset}/{arch}/{method}/seed{seed}.tsv")
    wildcard_constraints:
        method=GRID.methods_regex(start="warmup", per_epoch=False),
    conda:
        TRAIN_ENV
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        runtime=train_runtime(CFG.schedule.epoch_steps * CFG.schedule.num_epochs),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[CFG.schedule.epoch_steps] * CFG.schedule.num_epochs,
        first_epoch=1,
        # the run's last epoch is evaluated as the authors do (evaluation.final_*)
        final_epoch=CFG.schedule.num_epochs,
        settings=settings_of(),
    script:
        "../scripts/train.py"


rule train_scratch:
    input:
        data=get_data,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/metrics.csv"),
        # its SHA-256 (bmrsparse.io): readers refuse a damaged CSV; a declared output, so --cache keeps it
        metrics_sha256=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/metrics.csv.sha256"),
    log:
        seed_tag("logs/train_scratch/{dataset}/{arch}/{method}/seed{seed}.log"),
    benchmark:
        seed_tag("benchmarks/train_scratch/{dataset}/{arch}/{method}/seed{seed}.tsv")
    wildcard_constraints:
        method=GRID.methods_regex(start="scratch", per_epoch=False),
    priority: 1
    conda:
        TRAIN_ENV
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        runtime=train_runtime(CFG.schedule.warmup_steps + CFG.schedule.epoch_steps * CFG.schedule.num_epochs),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[CFG.schedule.warmup_steps] + [CFG.schedule.epoch_steps] * CFG.schedule.num_epochs,
        first_epoch=0,
        # the run's last epoch is evaluated as the authors do (evaluation.final_*)
        final_epoch=CFG.schedule.num_epochs,
        settings=settings_of(),
    script:
        "../scripts/train.py"


rule train_epoch:
    input:
        data=get_data,
        init_state=get_epoch_init,
        reference=get_epoch_reference,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/epoch{epoch}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/epoch{epoch}/metrics.csv"),
        # its SHA-256 (bmrsparse.io): readers refuse a damaged CSV; a declared output, so --cache keeps it
        metrics_sha256=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/epoch{epoch}/metrics.csv.sha256"),
    log:
        seed_tag("logs/train_epoch/{dataset}/{arch}/{method}/seed{seed}/epoch{epoch}.log"),
    benchmark:
        seed_tag("benchmarks/train_epoch/{dataset}/{arch}/{method}/seed{seed}/epoch{epoch}.tsv")
    wildcard_constraints:
        method=GRID.methods_regex(per_epoch=True),
    conda:
        TRAIN_ENV
    threads: CFG.resources.threads
    resources:
        **GPU_JOB,  # gpu, and the GPU partition and model when set (bmrsparse.workflow.jobs.gpu_resources)
        runtime=train_runtime(CFG.schedule.epoch_steps),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[CFG.schedule.epoch_steps],
        first_epoch=lambda wildcards: int(wildcards.epoch),
        # the run's last epoch is evaluated as the authors do (evaluation.final_*)
        final_epoch=CFG.schedule.num_epochs,
        settings=settings_of(),
    script:
        "../scripts/train.py"
