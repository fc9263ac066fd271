# Download (or copy) and prepare each dataset: checksummed archives -> one .npz with the train and test splits.


rule prepare_dataset:
    output:
        data="results/data/{dataset}.npz",
    log:
        "logs/prepare_dataset/{dataset}.log",
    cache: "omit-software"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # The cache key hashes params, not wildcards: name the data set here.
        dataset=lambda wildcards: wildcards.dataset,
        # ... and the library code that writes it (the same digest as every training rule)
        library=LIBRARY_DIGEST,
        source_dir=CFG.data_dir,
        download=CFG.download,
    script:
        "../scripts/prepare_dataset.py"
