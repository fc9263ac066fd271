# Training. The Flat-FF warm-up (epoch 0) is shared by the Flat-FF continuation and BMR-S&S; BMR-S&S runs one
# job per epoch (prune, train, evaluate); Flat-MAP and Tiered-FF train from scratch for the same step budget.
# Everything that changes a result is a param, so a change reruns exactly the affected jobs and the warm-up's
# between-workflow cache key (--cache) sees it.


rule train_warmup:
    input:
        data=get_data,
    output:
        posterior=per_seed("results/warmup/{dataset}/{arch}/seed{seed}/posterior.npz"),
        metrics=per_seed("results/warmup/{dataset}/{arch}/seed{seed}/metrics.csv"),
    params:
        # The cache key hashes params, not wildcards: name the job's wildcards here.
        dataset=lambda wildcards: wildcards.dataset,
        arch=lambda wildcards: wildcards.arch,
        seed=job_seeds,
        # ... and the library code, so a changed library does not reuse an old cached warm-up
        library=LIBRARY_DIGEST,
        method="flat_ff",
        schedule=[WARMUP_STEPS],
        first_epoch=0,
        settings=settings_of("flat_ff"),
    log:
        seed_tag("logs/train_warmup/{dataset}/{arch}/seed{seed}.log"),
    # No benchmark: Snakemake refuses one on a cached rule; the metrics CSV holds seconds and steps/s.
    cache: "omit-software"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(WARMUP_STEPS),
        mem_mb=train_mem_mb,
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"


rule train_flat_ff:
    input:
        data=get_data,
        init_state=get_warmup_posterior,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/flat_ff/seed{seed}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/flat_ff/seed{seed}/metrics.csv"),
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method="flat_ff",
        schedule=[EPOCH_STEPS] * NUM_EPOCHS,
        first_epoch=1,
        settings=settings_of("flat_ff"),
    log:
        seed_tag("logs/train_flat_ff/{dataset}/{arch}/seed{seed}.log"),
    benchmark:
        seed_tag("benchmarks/train_flat_ff/{dataset}/{arch}/seed{seed}.tsv")
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(EPOCH_STEPS * NUM_EPOCHS),
        mem_mb=train_mem_mb,
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"


rule train_scratch:
    input:
        data=get_data,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/{method}/seed{seed}/metrics.csv"),
    wildcard_constraints:
        method="flat_map|tiered_ff",
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method=lambda wildcards: wildcards.method,
        schedule=[WARMUP_STEPS] + [EPOCH_STEPS] * NUM_EPOCHS,
        first_epoch=0,
        settings=settings_of(),
    log:
        seed_tag("logs/train_scratch/{dataset}/{arch}/{method}/seed{seed}.log"),
    benchmark:
        seed_tag("benchmarks/train_scratch/{dataset}/{arch}/{method}/seed{seed}.tsv")
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(WARMUP_STEPS + EPOCH_STEPS * NUM_EPOCHS),
        mem_mb=train_mem_mb,
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"


rule bmr_epoch:
    input:
        data=get_data,
        init_state=get_bmr_init,
    output:
        posterior=per_seed("results/train/{dataset}/{arch}/bmr_ss/seed{seed}/epoch{epoch}/posterior.npz"),
        metrics=per_seed("results/train/{dataset}/{arch}/bmr_ss/seed{seed}/epoch{epoch}/metrics.csv"),
    params:
        seed=job_seeds,
        library=LIBRARY_DIGEST,
        method="bmr_ss",
        schedule=[EPOCH_STEPS],
        first_epoch=lambda wildcards: int(wildcards.epoch),
        settings=settings_of("bmr_ss"),
    log:
        seed_tag("logs/bmr_epoch/{dataset}/{arch}/seed{seed}/epoch{epoch}.log"),
    benchmark:
        seed_tag("benchmarks/bmr_epoch/{dataset}/{arch}/seed{seed}/epoch{epoch}.tsv")
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        runtime=train_runtime(EPOCH_STEPS),
        mem_mb=train_mem_mb,
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"
