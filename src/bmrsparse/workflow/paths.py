"""Where the workflow's files are: one function per kind of file, the templates the rules declare.

``results/<step>/{dataset}/{arch}/...`` as in the README's "Results layout"; a training job's files sit in its
folder (``posterior.npz``, ``metrics.csv`` and its ``.sha256``), its log under ``logs/<rule>/``.

What a run sums up over its grid (the metrics table, the step timing, the measured-inference table, the tables and
the figures) goes under its summary folder (:func:`summary_dir`): ``results/`` for the grid of the config files,
``results/subsets/<name>/`` for a run whose command line (``--config``) leaves out part of that grid
(:func:`subset_name`), so that a subset run does not redraw the whole grid's tables and figures for its subset alone.
Trained models, data, compact networks and sparsity curves are per job and shared by every run.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["data_path", "warmup_dir", "train_dir", "epoch_dir", "compact_stem", "sparsity_curve", "METRICS",
           "TIMING", "INFERENCE_TABLE", "RESULTS", "SUBSETS", "GRID_KEYS", "subset_name", "summary_dir",
           "metrics_table", "timing_table", "inference_table", "figure_files", "table_files"]

#: Every result of the workflow.
RESULTS = "results"
#: The summary folders of subset runs (:func:`subset_name`).
SUBSETS = f"{RESULTS}/subsets"
#: The config keys that span the grid: a run that leaves out a value of one of them is a subset run.
GRID_KEYS = ("datasets", "archs", "methods", "seeds")


def subset_name(files: Mapping, run: Mapping) -> str | None:
    """The name of a subset run's summary folder, or None when the run covers the config files' grid.

    ``files`` is the config the config files give (before ``--config``), ``run`` the run's config. A run is a subset
    when, for one of :data:`GRID_KEYS`, it leaves out a value the config files give (``--config 'archs=[vit]'``
    over ``archs: [mlp, lenet, mixer, vit]``); one that only adds values (``'seeds=[0,1,2]'`` over ``seeds: [0]``)
    is not. The name lists every grid key whose values differ from the config files', with the run's values, e.g.
    ``datasets-cifar10_archs-vit``."""
    differ, leaves_out = [], False
    for key in GRID_KEYS:
        given, used = files.get(key), run.get(key)
        if given is None or used is None:
            continue
        given_set, used_set = {str(v) for v in given}, {str(v) for v in used}
        if given_set != used_set:
            differ.append(f"{key}-" + "+".join(str(v) for v in used))
            leaves_out |= not given_set <= used_set
    return "_".join(differ) if leaves_out else None


def summary_dir(subset: str | None = None) -> str:
    """The folder of a run's metrics table, timing, tables and figures: ``results`` or that of subset ``subset``."""
    return RESULTS if subset is None else f"{SUBSETS}/{subset}"


def metrics_table(root: str = RESULTS) -> str:
    """The tidy per-epoch metrics of every training stage of a run."""
    return f"{root}/metrics/metrics.csv"


def timing_table(root: str = RESULTS) -> str:
    """Claim 4's timing of steps, taken alone."""
    return f"{root}/bench/speed.csv"


def inference_table(root: str = RESULTS) -> str:
    """The measured-inference table."""
    return f"{root}/tables/inference.csv"


#: The files of a run of the config files' grid (summary folder ``results``).
METRICS = metrics_table()
TIMING = timing_table()
INFERENCE_TABLE = inference_table()


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


def figure_files(name: str, root: str = RESULTS) -> list[str]:
    return [f"{root}/figures/{name}.{ext}" for ext in ("pdf", "png")]


def table_files(name: str, root: str = RESULTS) -> list[str]:
    return [f"{root}/tables/{name}.{ext}" for ext in ("csv", "md")]
