"""Where the workflow's files are: one function per kind of file, the templates the rules declare.

``results/<step>/{dataset}/{arch}/...`` as in the README's "Results layout"; a training job's files sit in its
folder (``posterior.npz``, ``metrics.csv`` and its ``.sha256``), its log under ``logs/<rule>/``.
"""

from __future__ import annotations

__all__ = ["data_path", "warmup_dir", "train_dir", "epoch_dir", "compact_stem", "sparsity_curve", "METRICS",
           "TIMING", "INFERENCE_TABLE", "figure_files", "table_files"]

#: The tidy per-epoch metrics of every training stage.
METRICS = "results/metrics/metrics.csv"
#: Claim 4's timing of steps, taken alone.
TIMING = "results/bench/speed.csv"
#: The measured-inference table.
INFERENCE_TABLE = "results/tables/inference.csv"


def data_path(dataset: str) -> str:
    return f"results/data/{dataset}.npz"


def warmup_dir(dataset: str, arch: str, seed, warmup: str) -> str:
    """Folder of a warm-up; ``warmup`` is its tag (:func:`bmrsparse.workflow.warmups.warmup_tag`)."""
    return f"results/warmup/{dataset}/{arch}/{warmup}/seed{seed}"


def train_dir(dataset: str, arch: str, method: str, seed) -> str:
    return f"results/train/{dataset}/{arch}/{method}/seed{seed}"


def epoch_dir(dataset: str, arch: str, method: str, seed, epoch) -> str:
    """Folder of epoch ``epoch`` of a method that runs one job per epoch."""
    return f"{train_dir(dataset, arch, method, seed)}/epoch{epoch}"


def compact_stem(dataset: str, arch: str, method: str, seed) -> str:
    """``<stem>.npz`` and ``<stem>.json``: an exported compact network."""
    return f"results/compact/{dataset}/{arch}/{method}/seed{seed}"


def sparsity_curve(dataset: str, arch: str, seed) -> str:
    return f"results/sparsity/{dataset}/{arch}/seed{seed}.csv"


def figure_files(name: str) -> list[str]:
    return [f"results/figures/{name}.{ext}" for ext in ("pdf", "png")]


def table_files(name: str) -> list[str]:
    return [f"results/tables/{name}.{ext}" for ext in ("csv", "md")]
