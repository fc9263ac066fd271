"""Beyond the paper: accuracy against sparsity, the final Flat-FF posteriors pruned without retraining by three scores
(:mod:`bmrsparse.sparsity`), with the final epochs of the methods that prune and retrain as markers."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..methods import METHODS
from ..sparsity import SCORES
from ._style import ARCH_LABELS, DATASET_LABELS, in_order, label_of

__all__ = ["plot_sparsity_accuracy", "SCORE_LABELS", "SCORE_METHODS"]

#: Legend label of each score, and the retrained method that prunes by it (its colour is the curve's).
SCORE_LABELS = {"bmr": r"BMR $\Delta F(\lambda{=}0)$", "magnitude": r"$|E[w]|$", "snr": r"SNR $|\mu|/\sigma$"}
SCORE_METHODS = {"bmr": "bmr_ss", "magnitude": "magnitude_ss", "snr": "snr_ss"}
_FALLBACK_COLORS = {"bmr": "#2ca02c", "magnitude": "#9467bd", "snr": "#d62728"}
#: Markers of the retrained methods' end points (they sit at about the same sparsity: matched baselines).
_MARKERS = ("*", "D", "s", "^", "v", "P", "X")


def _method_style(name: str):
    """Label and colour of a method from the method registry (an unregistered name: the name, no colour)."""
    label = getattr(METHODS.get(name), "label", None) or name
    color = getattr(METHODS.get(name), "color", None)
    return label, color


def _final_points(metrics: pd.DataFrame, dataset: str, arch: str, method: str) -> pd.DataFrame:
    sel = metrics[(metrics.dataset == dataset) & (metrics.arch == arch) & (metrics.method == method)]
    if sel.empty:
        return sel
    return sel[sel.epoch == sel.epoch.max()]


def plot_sparsity_accuracy(curves: pd.DataFrame, metrics: pd.DataFrame | None = None,
                           retrained: Sequence[str] | None = None) -> Figure:
    """ACC and NLL against the pruned fraction: the pruned-without-retraining curves of every score, per data set
    (two rows each: ACC, NLL) and architecture (columns), with the retrained methods' final epochs as markers.

    Args:
      curves: rows of :func:`bmrsparse.sparsity.sparsity_curve` for any number of data sets, architectures and seeds (lines: mean over
        seeds; band: min..max when there are several).
      metrics: the tidy metrics table; its final epoch of each method in ``retrained`` is drawn as a marker
        (mean over seeds, error bars min..max).
      retrained: methods to overlay (default: those in ``metrics`` that prune: ``bmr_ss``, the pruning baselines
        and any registered method whose declaration says it prunes).
    """
    if curves.empty:
        raise ValueError("no sparsity curves to draw")
    datasets = in_order(curves.dataset, list(DATASET_LABELS))
    archs = in_order(curves.arch, list(ARCH_LABELS))
    present = set(metrics.method) if metrics is not None else set()
    if retrained is None:  # the methods that prune: BMR-S&S, the baselines, any registered later
        retrained = [m for m in in_order(present, list(SCORE_METHODS.values()))
                     if m in SCORE_METHODS.values() or getattr(METHODS.get(m), "prunes", False)]
    retrained = [m for m in retrained if m in present]
    fig = Figure(figsize=(max(6.0, 3.2 * len(archs) + 0.6), 2.6 * 2 * len(datasets) + 0.6), layout="constrained")
    axes = fig.subplots(2 * len(datasets), len(archs), squeeze=False, sharex=True)
    for di, dataset in enumerate(datasets):
        for ai, arch in enumerate(archs):
            sel = curves[(curves.dataset == dataset) & (curves.arch == arch)]
            for ri, metric in enumerate(("acc", "nll")):
                ax = axes[2 * di + ri, ai]
                for score in [s for s in SCORES if s in set(sel.score)]:
                    g = sel[sel.score == score].groupby("fraction")
                    x = g.pruned_fraction.mean()
                    y = g[metric]
                    color = _method_style(SCORE_METHODS[score])[1] or _FALLBACK_COLORS[score]
                    ax.plot(x.values, y.mean().values, "-o", ms=3, lw=1.4, color=color,
                            label=f"{SCORE_LABELS[score]}, not retrained")
                    if sel.seed.nunique() > 1:
                        ax.fill_between(x.values, y.min().values, y.max().values, color=color, alpha=0.15, lw=0)
                for index, method in enumerate(retrained):
                    pts = _final_points(metrics, dataset, arch, method)
                    if pts.empty:
                        continue
                    label, color = _method_style(method)
                    xm, ym = pts.pruned_fraction.mean(), pts[metric].mean()
                    err = ([[ym - pts[metric].min()], [pts[metric].max() - ym]] if len(pts) > 1 else None)
                    marker = _MARKERS[index % len(_MARKERS)]
                    ax.errorbar([xm], [ym], yerr=err, fmt=marker, ms=11 if marker == "*" else 7, mec="black", mew=0.6,
                                color=color or "black", label=f"{label}, retrained", zorder=5)
                ax.set_xlim(-0.02, 1.02)
                ax.grid(alpha=0.3)
                if di == 0 and ri == 0:
                    ax.set_title(label_of(ARCH_LABELS, arch))
                if ai == 0:
                    ax.set_ylabel(f"{label_of(DATASET_LABELS, dataset)}\n{metric.upper()}")
                if 2 * di + ri == 2 * len(datasets) - 1:
                    ax.set_xlabel("pruned fraction")
    handles = {}
    for ax in axes.ravel():
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=2 if len(archs) < 3 else 3,
               fontsize="small", frameon=False)
    return fig
