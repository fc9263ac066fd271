"""Tidy metrics and the tables of the workflow: the metrics of every stage, the final metrics, and the settings line
every table carries (the paper-claims table: :mod:`.claims`).

The tidy metrics table has one row per (dataset, arch, method, seed, epoch) with the columns of
:data:`METRIC_COLUMNS` (those written by :func:`bmrsparse.experiment.run_stage`). Flat-FF and BMR-S&S share
the Flat-FF warm-up as their epoch 0, so :func:`read_metrics` can relabel the warm-up rows (``as_method``).

Example::

    metrics = collect_metrics([read_metrics("warmup.csv", as_method="bmr_ss"), read_metrics("epoch1.csv")])
    write_table(final_metrics(metrics), "final.csv", "final.md", title="Final metrics")
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import DATASETS
from ..io import atomic_write_text, read_csv
from ..methods import METHODS
from ..metrics import METRIC_COLUMNS as ALL_METRIC_COLUMNS
from ..nets import NETWORKS

__all__ = [
    "training_cost",
    "METRIC_COLUMNS",
    "METHOD_ORDER",
    "ARCH_ORDER",
    "DATASET_ORDER",
    "read_metrics",
    "collect_metrics",
    "final_metrics",
    "last_epochs",
    "describe_settings",
    "to_markdown",
    "write_table",
]

#: kept when every part has them (older CSVs lack them); eval_samples, eval_images: the evaluation a row used
_OPTIONAL = ("ece_width15", "elbo", "eval_samples", "eval_images")
#: Columns every metrics CSV must have (those run_stage writes; ``ece_width15`` and ``elbo`` are optional and kept
#: when present).
METRIC_COLUMNS = tuple(c for c in ALL_METRIC_COLUMNS if c not in _OPTIONAL)
_KEY = ["dataset", "arch", "method", "seed", "epoch"]

#: Row order of the tables: the registries' (``order`` of each declaration, then name); live views, so a method,
#: network or dataset added later takes its declared place. Names no registry holds come last.
METHOD_ORDER = METHODS
ARCH_ORDER = NETWORKS
DATASET_ORDER = DATASETS

def _order_key(values: pd.Series, order: Iterable[str]) -> pd.Series:
    rank = {name: i for i, name in enumerate(order)}
    return values.map(lambda v: rank.get(v, len(rank)))


def _sorted(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    orders = {"dataset": DATASET_ORDER, "arch": ARCH_ORDER, "method": METHOD_ORDER}

    def key(col: pd.Series) -> pd.Series:
        return _order_key(col, orders[col.name]) if col.name in orders else col

    return frame.sort_values(list(by), key=key, kind="stable").reset_index(drop=True)


def read_metrics(path: str | os.PathLike, *, as_method: str | None = None) -> pd.DataFrame:
    """Read one metrics CSV written by ``run_stage``; ``as_method`` relabels its rows (the shared warm-up).

    Raises:
      DamagedFileError: the file does not match its digest file ``<path>.sha256`` (see :mod:`bmrsparse.io`).
      ValueError: the file lacks a required column or has no rows (the message names the file).
    """
    frame = read_csv(path, producer="bmrsparse.experiment.run_stage")
    missing = [c for c in METRIC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"metrics file {path} lacks the column(s) {missing}; expected {list(METRIC_COLUMNS)}")
    if frame.empty:
        raise ValueError(f"metrics file {path} has no rows")
    if as_method is not None:
        frame["method"] = as_method
    return frame


def collect_metrics(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-stage metrics into one tidy table sorted by dataset, arch, method, seed and epoch.

    Raises:
      ValueError: no frames, or two rows for the same (dataset, arch, method, seed, epoch).
    """
    frames = list(frames)
    if not frames:
        raise ValueError("collect_metrics: no metrics given")
    columns = [c for c in ALL_METRIC_COLUMNS
               if c in METRIC_COLUMNS or all(c in f.columns for f in frames)]  # optional ones in their place
    tidy = pd.concat([f[columns] for f in frames], ignore_index=True)
    duplicated = tidy.duplicated(_KEY, keep=False)
    if duplicated.any():
        rows = tidy.loc[duplicated, _KEY].drop_duplicates().to_dict("records")
        raise ValueError(f"collect_metrics: more than one row for {rows[:5]}")
    tidy["seed"] = tidy["seed"].astype(int)
    tidy["epoch"] = tidy["epoch"].astype(int)
    return _sorted(tidy, _KEY)


def _speed_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Rows that time a method's own gradient steps (BMR-S&S's epoch 0 is the shared Flat-FF warm-up)."""
    return metrics[~((metrics["method"] == "bmr_ss") & (metrics["epoch"] == 0))]


def final_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metrics after the last epoch per dataset x arch x method: mean (and SD when several seeds) over seeds.

    Columns: dataset, arch, method, seeds, epoch, step, acc, acc_sd, ece, ece_sd, nll, nll_sd, pruned_fraction,
    pruned_fraction_sd, steps_per_s (mean over the method's own training epochs).
    """
    last = metrics.loc[metrics.groupby(["dataset", "arch", "method", "seed"])["epoch"].idxmax()]
    group = ["dataset", "arch", "method"]
    agg = last.groupby(group, sort=False).agg(
        seeds=("seed", "nunique"),
        epoch=("epoch", "max"),
        step=("step", "max"),
        acc=("acc", "mean"),
        acc_sd=("acc", "std"),
        ece=("ece", "mean"),
        ece_sd=("ece", "std"),
        nll=("nll", "mean"),
        nll_sd=("nll", "std"),
        pruned_fraction=("pruned_fraction", "mean"),
        pruned_fraction_sd=("pruned_fraction", "std"),
    )
    speed = _speed_rows(metrics).groupby(group, sort=False)["steps_per_s"].mean().rename("steps_per_s")
    out = agg.join(speed).reset_index()
    return _sorted(out, group)


def last_epochs(metrics: pd.DataFrame) -> pd.DataFrame:
    """Each (dataset, arch, method, seed)'s row of its last epoch, with the method's mean training speed."""
    metrics = metrics.reset_index(drop=True)  # idxmax's labels must name one row each (concatenated tables repeat)
    last = metrics.loc[metrics.groupby(["dataset", "arch", "method", "seed"])["epoch"].idxmax()].copy()
    speed = _speed_rows(metrics).groupby(["dataset", "arch", "method", "seed"])["steps_per_s"].mean()
    last["steps_per_s"] = [speed.get(k, np.nan) for k in zip(last["dataset"], last["arch"], last["method"],
                                                              last["seed"])]
    return last


def training_cost(metrics: pd.DataFrame, dataset: str, arch: str, seed: int) -> dict[str, tuple[int, float]]:
    """``{method: (SVI steps, seconds)}`` of each method's whole training in one (dataset, arch, seed): the step
    count of its last epoch (steps are counted from the start, warm-up included) and the seconds of all its epochs,
    its warm-up (epoch 0) included; a warm-up shared by several methods counts for each."""
    sel = metrics[(metrics["dataset"] == dataset) & (metrics["arch"] == arch) & (metrics["seed"] == seed)]
    return {str(m): (int(g["step"].max()), float(g["seconds"].sum())) for m, g in sel.groupby("method", sort=False)}


def describe_settings(config: Mapping, configfiles: Sequence[str] = ()) -> str:
    """One line naming the settings that produced a run's tables: config files, seeds, schedule, batch size,
    learning rates and (when the config sets them) the ELBO estimator, BMR iterations and keep rule and the guides'
    initialisation. ``config``: the validated config, or any part of it."""
    parts = []
    if configfiles:
        parts.append("config files " + ", ".join(str(f) for f in configfiles) + " (later ones override)")
    if "seeds" in config:
        parts.append("seeds " + ", ".join(str(s) for s in config["seeds"]))
    schedule = config.get("schedule", {})
    if schedule:
        parts.append(f"schedule: warm-up {schedule.get('warmup_steps')} steps, then {schedule.get('num_epochs')} "
                     f"epochs of {schedule.get('epoch_steps')} steps")
    training = config.get("training", {})
    if "batch_size" in training:
        parts.append(f"batch size {training['batch_size']}")
    rates = training.get("learning_rate")
    if isinstance(rates, Mapping):
        grid = config.get("methods") or list(rates)  # the grid's methods, in the grid's order
        parts.append("AdaBelief learning rates " + ", ".join(f"{m} {rates[m]:g}" for m in grid if m in rates))
    elif rates is not None:
        parts.append(f"AdaBelief learning rate {rates}")
    for key, name in (("elbo", "ELBO"), ("bmr_iters", "BMR fixed-point iterations"), ("bmr_keep", "BMR keep rule"),
                      ("init_radius", "guide init radius"), ("init_scale", "guide init scale")):
        value = training.get(key)
        if isinstance(value, Mapping):
            value = ", ".join(f"{m} {v}" for m, v in value.items()) or None
        if value is not None:
            parts.append(f"{name} {value}")
    evaluation = config.get("evaluation", {})
    if evaluation:
        subset = evaluation.get("test_subset")
        images = f"the first {subset}" if subset else "all"
        if "final_num_samples" in evaluation:
            final = evaluation.get("final_test_subset")
            final_images = f"the first {final}" if final else "all"
            parts.append(f"the last epoch (judged here) with {evaluation['final_num_samples']} predictive samples on "
                         f"{final_images} test images, the earlier ones with {evaluation.get('num_samples')} on "
                         f"{images}")
        else:
            parts.append(f"{evaluation.get('num_samples')} predictive samples on {images} test images")
    return "; ".join(parts)


def to_markdown(frame: pd.DataFrame, *, title: str | None = None, note: str | None = None, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats with ``digits`` significant digits, NaN empty);
    ``note`` is a paragraph between the title and the table (e.g. the settings)."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if math.isnan(value) else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    lines = ([f"# {title}", ""] if title else []) + ([note, ""] if note else []) + [header, rule, *body]
    return "\n".join(lines) + "\n"


def write_table(
    frame: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    note: str | None = None,
) -> None:
    """Write ``frame`` as CSV (and Markdown when ``md_path`` is given, with ``note`` under the title), each file
    atomically."""
    atomic_write_text(csv_path, frame.to_csv(index=False))
    if md_path is not None:
        atomic_write_text(md_path, to_markdown(frame, title=title, note=note))
