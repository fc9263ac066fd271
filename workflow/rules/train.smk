# Training, generic over the methods registered in bmrsparse.methods (see METHOD_INFO in common.smk): what a
# method declares decides which rule trains it and what that rule's inputs are.
#   train_warmup    a Flat-FF warm-up (epoch 0 of every method that declares start="warmup"), one per distinct
#                   warm-up settings: a method whose learning rate differs from Flat-FF's (BMR-S&S at the authors'
#                   1e-2) gets its own, shared by the methods with the same settings ({warmup}: their tag,
#                   bmrsparse.methods.warmup_tag)
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
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(WARMUP_STEPS),
        mem_mb=train_mem_mb,
    params:
        # The cache key hashes params, not wildcards: name the job's wildcards here.
        dataset=lambda wildcards: wildcards.dataset,
        arch=lambda wildcards: wildcards.arch,
        warmup=lambda wildcards: wildcards.warmup,
        seed=job_seeds,
        # ... and the library code, so a changed library does not reuse an old cached warm-up
        library=LIBRARY_DIGEST,
        method=WARMUP_METHOD,
        schedule=[WARMUP_STEPS],
        first_epoch=0,
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
        method=methods_regex(start="warmup", per_epoch=False),
    conda:
        TRAIN_ENV
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(EPOCH_STEPS * NUM_EPOCHS),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[EPOCH_STEPS] * NUM_EPOCHS,
        first_epoch=1,
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
        method=methods_regex(start="scratch", per_epoch=False),
    priority: 1
    conda:
        TRAIN_ENV
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(WARMUP_STEPS + EPOCH_STEPS * NUM_EPOCHS),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[WARMUP_STEPS] + [EPOCH_STEPS] * NUM_EPOCHS,
        first_epoch=0,
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
        method=methods_regex(per_epoch=True),
    conda:
        TRAIN_ENV
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(EPOCH_STEPS),
        mem_mb=train_mem_mb,
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[EPOCH_STEPS],
        first_epoch=lambda wildcards: int(wildcards.epoch),
        settings=settings_of(),
    script:
        "../scripts/train.py"
