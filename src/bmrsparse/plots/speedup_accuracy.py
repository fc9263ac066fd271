"""Beyond the paper: accuracy against the measured inference speed-up over the dense network
(:func:`bmrsparse.inference.inference_table`)."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from ..inference import COLUMNS, FORMATS
from ..methods import METHODS
from ._style import ARCH_LABELS, DATASET_LABELS, label_of

__all__ = ["plot_speedup_accuracy"]

#: Marker of each format.
_MARKERS = {"dense": "o", "masked": "s", "bcoo": "^", "compact": "*"}


def _speedup_axis(ax, values) -> None:
    """A log x-axis of speed-ups labelled ``0.5x``, ``1x``, ``2x``, ``5x`` ... at 1-2-5 steps only (no minor labels,
    which overlap when the range is narrow; 1-5 or 1 steps over more than 1.6 or 2.6 decades), spanning at least a
    factor of 4 around 1 and the data, with the rightmost point at most about three quarters of the way across (room
    for its label)."""
    lo = min(0.5, 0.8 * min(values))
    top = max(values)
    hi = max(2.0, top * max(1.25, (top / lo) ** 0.3))
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    decades = math.log10(hi / lo)  # fewer steps on a wide axis, so that the labels do not run into each other
    steps = (1, 2, 5) if decades <= 1.6 else (1, 5) if decades <= 2.6 else (1,)
    ticks = [m * 10.0**e for e in range(-3, 5) for m in steps if lo <= m * 10.0**e <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_speedup_accuracy(table: pd.DataFrame) -> Figure:
    """Accuracy against measured speed-up over the dense network: one panel per (data set, architecture) and batch
    size; colour = method, marker = format (mean over seeds). Each compact network is labelled with its
    multiply-add ratio (the dense network's multiply-adds per image over its own), the speed-up its arithmetic
    alone would give; a compact network that removed no unit (ratio 1) is not labelled."""
    if table.empty:
        raise ValueError("no inference measurements to draw")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"the inference table lacks the column(s) {missing}")
    pairs = list(dict.fromkeys(zip(table.dataset, table.arch)))
    batches = sorted(set(table.batch))
    fig = Figure(figsize=(3.8 * len(pairs) + 0.6, 2.9 * len(batches) + 0.9), layout="constrained")
    axes = fig.subplots(len(batches), len(pairs), squeeze=False)
    keys = ["dataset", "arch", "method", "format", "batch"]
    mean = table.groupby(keys, sort=False)[["acc", "speedup", "mac_ratio"]].mean()
    for ci, (dataset, arch) in enumerate(pairs):
        for ri, b in enumerate(batches):
            ax = axes[ri, ci]
            sel = mean.loc[(dataset, arch)].reset_index()
            sel = sel[sel.batch == b]
            for row in sel.itertuples():
                info = METHODS.get(row.method)
                compact_ = row.format == "compact"
                ax.scatter([row.speedup], [100 * row.acc], marker=_MARKERS.get(row.format, "o"),
                           s=130 if compact_ else 45, color=getattr(info, "color", "black"),
                           edgecolor="black", linewidth=0.5, zorder=3)
                # Flat-FF's compact row is the whole network; a compact network that removed no unit (MACs /1)
                # is left unlabelled
                if compact_ and row.method != "flat_ff" and row.mac_ratio > 1.005:
                    ax.annotate(f"MACs /{row.mac_ratio:.3g}", (row.speedup, 100 * row.acc), xytext=(6, -3),
                                textcoords="offset points", fontsize="x-small", color="dimgrey")
            ax.axvline(1.0, color="grey", lw=0.8, ls=":")
            ax.margins(y=0.1)
            _speedup_axis(ax, list(sel.speedup))
            ax.grid(alpha=0.3)
            ax.set_title(f"{label_of(DATASET_LABELS, dataset)} / {label_of(ARCH_LABELS, arch)}, "
                         f"batch {b}", fontsize="medium")
            if ci == 0:
                ax.set_ylabel("ACC (%), posterior mean")
            if ri == len(batches) - 1:
                ax.set_xlabel("measured speed-up over dense")
    handles = [Line2D([], [], ls="", marker="o", ms=8, color=getattr(METHODS.get(m), "color", "black"),
                      label=getattr(METHODS.get(m), "label", m)) for m in dict.fromkeys(table.method)]
    handles += [Line2D([], [], ls="", marker=_MARKERS[f], ms=8, color="white", mec="black", label=f)
                for f in FORMATS if f in set(table.format)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize="small",
               frameon=False)
    return fig
