# Tidy per-epoch metrics of every training stage, the final-metrics table and the paper-claims table.


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
    params:
        parts=metrics_parts(),
    log:
        "logs/collect_metrics.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/collect_metrics.py"


rule tables:
    input:
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
    params:
        acc_tolerance=config["claims"]["acc_tolerance"],
        pruned_threshold=config["claims"]["pruned_threshold"],
    log:
        "logs/tables.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
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
    params:
        library=LIBRARY_DIGEST,
    log:
        "logs/provenance.log",
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/provenance_table.py"
