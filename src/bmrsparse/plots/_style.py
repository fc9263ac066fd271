"""What every figure shares: the registries' labels and colours in their order, small drawing helpers, and
:func:`save_figure`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..data import DATASETS
from ..io import atomic_path
from ..methods import METHODS
from ..nets import NETWORKS

__all__ = ["METHOD_LABELS", "ARCH_LABELS", "DATASET_LABELS", "METHOD_COLORS", "PERFORMANCE_FIGURES", "save_figure"]

#: Labels and colours: live views of the registries (bmrsparse.methods, .nets, .data), each in its order.
METHOD_LABELS = METHODS.attribute_view("label")
ARCH_LABELS = NETWORKS.attribute_view("label")
DATASET_LABELS = DATASETS.attribute_view("label")
METHOD_COLORS = METHODS.attribute_view("color")
#: Figure name of the performance figure of each data set (the paper's numbering; bmrsparse.data.DatasetInfo.figure).
PERFORMANCE_FIGURES = DATASETS.attribute_view("figure")

METRIC_LABELS = {"acc": "ACC", "ece": "ECE", "nll": "NLL"}


def in_order(values, order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def label_of(mapping: Mapping[str, str], key: str) -> str:
    return mapping.get(key, key)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the metrics table lacks the column(s) {missing}")


def band_stats(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean, min, max and seed count of ``column`` per epoch (the band spans the seeds' min..max)."""
    return frame.groupby("epoch")[column].agg(["mean", "min", "max", "count"])


def line_with_band(ax, stats: pd.DataFrame, *, color, label, style: str = "o:") -> None:
    ax.plot(stats.index, stats["mean"], style, ms=3, color=color, label=label)
    if stats["count"].max() > 1:
        ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, linewidth=0)


def save_figure(fig: Figure, *paths: str | os.PathLike, dpi: int = 150) -> None:
    """Save ``fig`` to each path atomically, in the format named by the path's suffix (``.pdf``, ``.png``...)."""
    if not paths:
        raise ValueError("save_figure: no output path given")
    for path in paths:
        suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
        if not suffix:
            raise ValueError(f"save_figure: {path} has no suffix to choose the format from")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix, dpi=dpi)
