"""The paper's figures, drawn from the tidy metrics table and from posterior summaries.

- :func:`plot_performance`: Fig. 1 (FashionMNIST), S1 (CIFAR-10), S2 (CIFAR-100): one row per architecture,
  columns ACC, ECE, NLL; one line per method over epochs (mean over seeds, band = min..max when several seeds).
- :func:`plot_pruned_fraction`: Fig. 2, one panel per data set: the fraction of weights BMR-S&S pruned over
  epochs, one line per architecture.
- :func:`plot_posterior_cdf`: Fig. 3, per-layer CDF of :math:`|E_q[w]|` on :math:`[e^{-16}, e^{-1}]`, MLP (top
  row) and LeNet-5 (bottom row), methods overlaid.
- :func:`plot_first_layer`: Fig. 4, heat maps of the first layer's posterior means, one panel per method, one
  fixed symmetric colour scale per architecture.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no display
needed); :func:`save_figure` writes it atomically in the formats given by the file suffixes.

Posterior summaries are the lists returned by :func:`bmrsparse.experiment.posterior_summary`: one dict per layer
``{name, kind, mean, pruned}`` in forward order. Weights BMR pruned are drawn as exactly zero.

Which figure the workflow draws with which function is declared in :mod:`bmrsparse.figures`.

Example::

    fig = plot_performance(metrics, "fashion_mnist")
    save_figure(fig, "results/figures/fig1.pdf", "results/figures/fig1.png")
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullFormatter

from .data import DATASETS
from .io import atomic_path
from .methods import MethodAttribute
from .nets import NETWORKS

__all__ = [
    "METHOD_LABELS",
    "ARCH_LABELS",
    "DATASET_LABELS",
    "METHOD_COLORS",
    "PERFORMANCE_FIGURES",
    "plot_performance",
    "plot_pruned_fraction",
    "plot_posterior_cdf",
    "plot_first_layer",
    "save_figure",
    "CDF_RANGE",
]

#: Labels and colours: live views of the registries (bmrsparse.methods, .nets, .data), each in its order.
METHOD_LABELS = MethodAttribute("label")
ARCH_LABELS = NETWORKS.attribute_view("label")
DATASET_LABELS = DATASETS.attribute_view("label")
METHOD_COLORS = MethodAttribute("color")
#: Figure name of the performance figure of each data set (the paper's numbering; bmrsparse.data.DatasetInfo.figure).
PERFORMANCE_FIGURES = DATASETS.attribute_view("figure")

_METRIC_LABELS = {"acc": "ACC", "ece": "ECE", "nll": "NLL"}


def _ordered(values, order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _label(mapping: Mapping[str, str], key: str) -> str:
    return mapping.get(key, key)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the metrics table lacks the column(s) {missing}")


def _band_stats(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean, min, max and seed count of ``column`` per epoch (the band spans the seeds' min..max)."""
    return frame.groupby("epoch")[column].agg(["mean", "min", "max", "count"])


def _line_with_band(ax, stats: pd.DataFrame, *, color, label, style: str = "o:") -> None:
    ax.plot(stats.index, stats["mean"], style, ms=3, color=color, label=label)
    if stats["count"].max() > 1:
        ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, linewidth=0)


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
    _require_columns(metrics, ["dataset", "arch", "method", "seed", "epoch", "acc", "ece", "nll"], "plot_performance")
    data = metrics[metrics["dataset"] == dataset]
    if data.empty:
        raise ValueError(f"plot_performance: no metrics for data set {dataset!r} (have {sorted(set(metrics['dataset']))})")
    archs = _ordered(data["arch"], tuple(ARCH_LABELS))
    methods = _ordered(data["method"], tuple(METHOD_LABELS))
    fig = Figure(figsize=(11.5, 2.3 * len(archs) + 0.9), layout="constrained")
    axes = fig.subplots(len(archs), 3, squeeze=False, sharex=True)
    for row, arch in enumerate(archs):
        for col, metric in enumerate(("acc", "ece", "nll")):
            ax = axes[row, col]
            for method in methods:
                sel = data[(data["arch"] == arch) & (data["method"] == method)]
                if not sel.empty:
                    _line_with_band(ax, _band_stats(sel, metric), color=METHOD_COLORS.get(method),
                                    label=_label(METHOD_LABELS, method))
            if row == 0:
                ax.set_title(_METRIC_LABELS[metric])
            if col == 0:
                ax.set_ylabel(_label(ARCH_LABELS, arch))
            if row == len(archs) - 1:
                ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="method", frameon=False)
    fig.suptitle(_label(DATASET_LABELS, dataset))
    return fig


def plot_pruned_fraction(metrics: pd.DataFrame, reference: Mapping | None = None) -> Figure:
    """Fraction of weights pruned by BMR-S&S over epochs (Fig. 2).

    As the paper: one panel per data set (shared y-axis), one line per architecture (the mean over seeds; with
    several seeds a band spans the seeds' min..max). Epoch 0 is the Flat-FF warm-up (nothing pruned yet). The
    legend sits outside the axes, on the right.

    Args:
      metrics: tidy metrics (columns dataset, arch, method, seed, epoch, pruned_fraction).
      reference: optional ``{dataset: band}`` with ``band`` from :func:`bmrsparse.reference.authors_band` (columns
        arch, epoch, lo, hi, seeds): the range of the authors' code over its seeds, drawn hatched behind our curve of
        the same architecture. Pass it only for runs comparable to it (:func:`bmrsparse.reference.schedule_mismatch`).

    Raises:
      ValueError: the table has no BMR-S&S rows.
    """
    _require_columns(metrics, ["dataset", "arch", "method", "seed", "epoch", "pruned_fraction"], "plot_pruned_fraction")
    data = metrics[metrics["method"] == "bmr_ss"]
    if data.empty:
        raise ValueError("plot_pruned_fraction: the metrics table has no bmr_ss rows")
    datasets = _ordered(data["dataset"], tuple(DATASET_LABELS))
    archs = _ordered(data["arch"], tuple(ARCH_LABELS))
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
                                label=f"{_label(ARCH_LABELS, arch)}, authors' code ({seeds} seed{'s' * (seeds > 1)})")
            _line_with_band(ax, _band_stats(sel, "pruned_fraction"), color=f"C{j}", label=_label(ARCH_LABELS, arch))
        ax.set_title(_label(DATASET_LABELS, dataset))
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


def _weights(layer: Mapping) -> np.ndarray:
    mean = np.asarray(layer["mean"], dtype=float)
    pruned = layer.get("pruned")
    if pruned is not None:
        pruned = np.asarray(pruned, dtype=bool)
        if pruned.shape != mean.shape:
            raise ValueError(f"layer {layer.get('name')!r}: pruned mask {pruned.shape} does not match mean {mean.shape}")
        mean = np.where(pruned, 0.0, mean)
    return mean


def _weight_layers(summary: Sequence[Mapping]) -> list[Mapping]:
    return [layer for layer in summary if layer["kind"] in ("dense", "conv")]


def _check_summaries(summaries: Mapping[str, Mapping[str, Sequence[Mapping]]], what: str) -> None:
    if not summaries or not any(summaries.values()):
        raise ValueError(f"{what}: no posterior summaries given")
    for arch, by_method in summaries.items():
        for method, summary in by_method.items():
            if not _weight_layers(summary):
                raise ValueError(f"{what}: the summary of {arch}/{method} has no dense or conv layer")


#: Fig. 3's x range, as the paper: :math:`e^{-16}` to :math:`e^{-1}` on a log axis.
CDF_RANGE = (math.exp(-16.0), math.exp(-1.0))


def _cdf(values: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """:math:`\\Pr(|w| < x)` at every ``x`` (the paper's Fig. 3 statistic)."""
    ordered = np.sort(np.abs(values).ravel())
    return np.searchsorted(ordered, xs, side="left") / max(ordered.size, 1)


def _log_e_ticks(ax, low: int, high: int) -> None:
    ticks = list(range(low, high, 4)) + [high]  # e^-16, e^-12, e^-8, e^-4, e^-1
    ax.set_xticks([math.exp(k) for k in ticks], [rf"$e^{{{k}}}$" for k in ticks])
    ax.xaxis.set_minor_locator(FixedLocator([math.exp(k) for k in range(low, high + 1)]))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_posterior_cdf(
    summaries: Mapping[str, Mapping[str, Sequence[Mapping]]], *, points_per_unit: int = 8
) -> Figure:
    r"""Per-layer CDF of :math:`|E_q[w]|` (Fig. 3): one row per architecture, one column per layer.

    As the paper: the y-axis is :math:`\Pr(|E_q[w]| < x)`, the x-axis runs from :math:`e^{-16}` to :math:`e^{-1}`
    on a log scale, one line per method; markers sit at the paper's grid :math:`x = e^{-16}, e^{-15}, \dots,
    e^{-1}`. Nothing is clamped: a weight BMR pruned is exactly zero and, like every weight below
    :math:`e^{-16}`, is counted from the left edge on; weights above :math:`e^{-1}` are why a curve may end below 1.

    Args:
      summaries: ``{arch: {method: posterior_summary}}``; rows follow the order MLP, LeNet-5, ...
      points_per_unit: curve points per unit of :math:`\ln x` (markers only at the integers).
    """
    _check_summaries(summaries, "plot_posterior_cdf")
    archs = _ordered(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(_weight_layers(s)) for a in archs for s in summaries[a].values())
    fig = Figure(figsize=(2.5 * n_cols + 1.8, 2.4 * len(archs) + 0.6), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False, sharey=True)
    low, high = -16, -1
    steps = (high - low) * points_per_unit
    xs = np.exp(np.linspace(low, high, steps + 1))
    for row, arch in enumerate(archs):
        methods = _ordered(summaries[arch], tuple(METHOD_LABELS))
        for col in range(n_cols):
            ax = axes[row, col]
            title = None
            for method in methods:
                layers = _weight_layers(summaries[arch][method])
                if col >= len(layers):
                    continue
                ax.plot(xs, _cdf(_weights(layers[col]), xs), ":", marker="o", ms=3, markevery=points_per_unit,
                        color=METHOD_COLORS.get(method), label=_label(METHOD_LABELS, method))
                title = f"{_label(ARCH_LABELS, arch)}: layer {col + 1} ({layers[col]['name']})"
            if title is None:
                ax.set_axis_off()
                continue
            ax.set_xscale("log")
            ax.set_xlim(*CDF_RANGE)
            _log_e_ticks(ax, low, high)
            ax.set_ylim(0, 1)
            ax.set_title(title, fontsize="small")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(r"$\Pr(|E_q[w]| < x)$")
            ax.set_xlabel(r"$x$")
    entries: dict = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside right upper", title="method", frameon=False)
    return fig


def _tile(kernel: np.ndarray) -> np.ndarray:
    """A 2-D image of a kernel: a dense ``[in, out]`` kernel as ``[out, in]``; conv filters tiled on a grid."""
    if kernel.ndim == 2:
        return kernel.T
    if kernel.ndim != 4:
        return kernel.reshape(kernel.shape[0], -1)
    kh, kw, c_in, c_out = kernel.shape
    rows = max(1, int(math.floor(math.sqrt(c_out))))
    cols = int(math.ceil(c_out / rows))
    tile_w = kw * c_in
    image = np.full((rows * (kh + 1) - 1, cols * (tile_w + 1) - 1), np.nan)
    for k in range(c_out):
        r, c = divmod(k, cols)
        block = np.concatenate([kernel[:, :, i, k] for i in range(c_in)], axis=1)
        image[r * (kh + 1) : r * (kh + 1) + kh, c * (tile_w + 1) : c * (tile_w + 1) + tile_w] = block
    return image


def plot_first_layer(
    summaries: Mapping[str, Mapping[str, Sequence[Mapping]]], *, limits: Mapping[str, float] | None = None
) -> Figure:
    """Heat maps of the first layer's posterior means (Fig. 4): one row per architecture, one panel per method.

    Dense kernels are drawn as [output unit, input]; conv kernels as a grid of filters (input channels side by
    side). Every row has one fixed symmetric colour scale shared by its methods' panels, as the paper:
    ``limits[arch]`` (Fig. 4 passes the paper's, :data:`bmrsparse.figures.first_layer.LIMITS`); an architecture
    without one gets the 99th percentile of |E_q[w]| over its row. Values beyond the limit take the end colours (the
    colour bar's arrows). Pruned weights are exactly zero (white).
    """
    _check_summaries(summaries, "plot_first_layer")
    limits = dict(limits or {})
    archs = _ordered(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(summaries[a]) for a in archs)
    fig = Figure(figsize=(3.0 * n_cols + 1.0, 3.0 * len(archs) + 0.5), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False)
    for row, arch in enumerate(archs):
        methods = _ordered(summaries[arch], tuple(METHOD_LABELS))
        images = {m: _tile(_weights(_weight_layers(summaries[arch][m])[0])) for m in methods}
        vmax = limits.get(arch)
        if vmax is None:
            vmax = max(float(np.nanpercentile(np.abs(im), 99)) for im in images.values())
        vmax = vmax if vmax > 0 else 1.0
        mappable = None
        for col in range(n_cols):
            ax = axes[row, col]
            if col >= len(methods):
                ax.set_axis_off()
                continue
            method = methods[col]
            mappable = ax.imshow(images[method], cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto",
                                 interpolation="nearest")
            first = _weight_layers(summaries[arch][method])[0]
            ax.set_title(f"{_label(ARCH_LABELS, arch)}, {_label(METHOD_LABELS, method)}", fontsize="small")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel("output unit" if first["kind"] == "dense" else "filters")
        fig.colorbar(mappable, ax=list(axes[row]), shrink=0.8, extend="both", label=r"$E_q[w]$")
    return fig


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
