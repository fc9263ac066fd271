"""Figs. 1 and 2 of the paper, from the tidy metrics table: performance over epochs, and BMR-S&S's pruned fraction."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._style import (ARCH_LABELS, DATASET_LABELS, METHOD_COLORS, METHOD_LABELS, METRIC_LABELS, band_stats, in_order,
                     label_of, line_with_band, require_columns)

__all__ = ["plot_performance", "plot_pruned_fraction"]


def plot_performance(metrics: pd.DataFrame, dataset: str) -> Figure:
    """ACC, ECE and NLL over epochs for every architecture and method of ``dataset`` (Fig. 1, S1, S2).

    Laid out as the paper's figures: one row per architecture, columns ACC, ECE and NLL, epochs on the x-axis,
    one line per method (the mean over seeds; with several seeds a band spans the seeds' min..max). The legend
    sits outside the axes, on the right.

    Args:
      metrics: tidy metrics (columns dataset, arch, method, seed, epoch, acc, ece, nll).
      dataset: which data set to draw.

    Raises:
      ValueError: the table has no rows for ``dataset``.
    """
    require_columns(metrics, ["dataset", "arch", "method", "seed", "epoch", "acc", "ece", "nll"], "plot_performance")
    data = metrics[metrics["dataset"] == dataset]
    if data.empty:
        raise ValueError(f"plot_performance: no metrics for data set {dataset!r} (have {sorted(set(metrics['dataset']))})")
    archs = in_order(data["arch"], tuple(ARCH_LABELS))
    methods = in_order(data["method"], tuple(METHOD_LABELS))
    fig = Figure(figsize=(11.5, 2.3 * len(archs) + 0.9), layout="constrained")
    axes = fig.subplots(len(archs), 3, squeeze=False, sharex=True)
    for row, arch in enumerate(archs):
        for col, metric in enumerate(("acc", "ece", "nll")):
            ax = axes[row, col]
            for method in methods:
                sel = data[(data["arch"] == arch) & (data["method"] == method)]
                if not sel.empty:
                    line_with_band(ax, band_stats(sel, metric), color=METHOD_COLORS.get(method),
                                    label=label_of(METHOD_LABELS, method))
            if row == 0:
                ax.set_title(METRIC_LABELS[metric])
            if col == 0:
                ax.set_ylabel(label_of(ARCH_LABELS, arch))
            if row == len(archs) - 1:
                ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="method", frameon=False)
    fig.suptitle(label_of(DATASET_LABELS, dataset))
    return fig


def plot_pruned_fraction(metrics: pd.DataFrame, reference: Mapping | None = None) -> Figure:
    """Fraction of weights pruned by BMR-S&S over epochs (Fig. 2).

    As the paper: one panel per data set (shared y-axis), one line per architecture (the mean over seeds; with
    several seeds a band spans the seeds' min..max). Epoch 0 is the Flat-FF warm-up (nothing pruned yet). The
    legend sits outside the axes, on the right.

    Args:
      metrics: tidy metrics (columns dataset, arch, method, seed, epoch, pruned_fraction).
      reference: optional ``{dataset: band}``, ``band`` with columns arch, epoch, lo, hi, seeds: the range of another
        code over its seeds (the authors'), drawn hatched behind our curve of the same architecture. Pass it only for
        runs comparable to it (the workflow does: :func:`bmrsparse.workflow.reference.reference_band`).

    Raises:
      ValueError: the table has no BMR-S&S rows.
    """
    require_columns(metrics, ["dataset", "arch", "method", "seed", "epoch", "pruned_fraction"], "plot_pruned_fraction")
    data = metrics[metrics["method"] == "bmr_ss"]
    if data.empty:
        raise ValueError("plot_pruned_fraction: the metrics table has no bmr_ss rows")
    datasets = in_order(data["dataset"], tuple(DATASET_LABELS))
    archs = in_order(data["arch"], tuple(ARCH_LABELS))
    fig = Figure(figsize=(3.6 * len(datasets) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False, sharey=True)[0]
    for ax, dataset in zip(axes, datasets):
        for j, arch in enumerate(archs):
            sel = data[(data["dataset"] == dataset) & (data["arch"] == arch)]
            if sel.empty:
                continue
            band = (reference or {}).get(dataset)
            ref = band[band["arch"] == arch] if band is not None else None
            if ref is not None and not ref.empty:
                seeds = int(ref["seeds"].iloc[0])
                ax.fill_between(ref["epoch"], ref["lo"], ref["hi"], facecolor="none", edgecolor=f"C{j}", hatch="////",
                                linewidth=0.0, alpha=0.6, zorder=0,
                                label=f"{label_of(ARCH_LABELS, arch)}, authors' code ({seeds} seed{'s' * (seeds > 1)})")
            line_with_band(ax, band_stats(sel, "pruned_fraction"), color=f"C{j}", label=label_of(ARCH_LABELS, arch))
        ax.set_title(label_of(DATASET_LABELS, dataset))
        ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pruned fraction")
    # One legend entry per architecture drawn in any panel, outside the axes.
    entries: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside right upper", title="network", frameon=False)
    return fig
