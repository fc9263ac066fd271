"""The paper's figures, drawn from the tidy metrics table and from posterior summaries.

- :func:`plot_performance`: Fig. 1 (FashionMNIST), S1 (CIFAR-10), S2 (CIFAR-100): rows ACC, ECE, NLL; one column
  per architecture; one line per method over epochs (mean over seeds, band = min..max when several seeds).
- :func:`plot_pruned_fraction`: Fig. 2, the fraction of weights BMR-S&S pruned per architecture and data set.
- :func:`plot_posterior_cdf`: Fig. 3, per-layer CDF of :math:`|E_q[w]|`, MLP (top row) and LeNet-5 (bottom row),
  methods overlaid.
- :func:`plot_first_layer`: Fig. 4, heat maps of the first layer's posterior means, one panel per method.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no display
needed); :func:`save_figure` writes it atomically in the formats given by the file suffixes.

Posterior summaries are the lists returned by :func:`bmrsparse.experiment.posterior_summary`: one dict per layer
``{name, kind, mean, pruned}`` in forward order. Weights BMR pruned are drawn as exactly zero.

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
from matplotlib.ticker import MaxNLocator

from .io import atomic_path

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
]

METHOD_LABELS = {"flat_map": "Flat-MAP", "flat_ff": "Flat-FF", "tiered_ff": "Tiered-FF", "bmr_ss": "BMR-S&S"}
ARCH_LABELS = {"mlp": "MLP", "lenet": "LeNet-5", "mixer": "MLP-Mixer", "vit": "ViT"}
DATASET_LABELS = {"fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
METHOD_COLORS = {"flat_map": "#7f7f7f", "flat_ff": "#1f77b4", "tiered_ff": "#ff7f0e", "bmr_ss": "#2ca02c"}
#: Figure name of the performance figure of each data set (the paper's numbering).
PERFORMANCE_FIGURES = {"fashion_mnist": "fig1", "cifar10": "figS1", "cifar100": "figS2"}

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


def plot_performance(metrics: pd.DataFrame, dataset: str) -> Figure:
    """ACC, ECE and NLL over epochs for every architecture and method of ``dataset`` (Fig. 1, S1, S2).

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
    fig = Figure(figsize=(3.2 * len(archs) + 0.8, 7.5), layout="constrained")
    axes = fig.subplots(3, len(archs), squeeze=False, sharex="col")
    for col, arch in enumerate(archs):
        for row, metric in enumerate(("acc", "ece", "nll")):
            ax = axes[row, col]
            for method in methods:
                sel = data[(data["arch"] == arch) & (data["method"] == method)]
                if sel.empty:
                    continue
                stats = sel.groupby("epoch")[metric].agg(["mean", "min", "max", "count"])
                color = METHOD_COLORS.get(method)
                ax.plot(stats.index, stats["mean"], marker="o", ms=3, color=color, label=_label(METHOD_LABELS, method))
                if stats["count"].max() > 1:
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, linewidth=0)
            if row == 0:
                ax.set_title(_label(ARCH_LABELS, arch))
            if col == 0:
                ax.set_ylabel(_METRIC_LABELS[metric])
            if row == 2:
                ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), frameon=False)
    fig.suptitle(_label(DATASET_LABELS, dataset))
    return fig


def plot_pruned_fraction(metrics: pd.DataFrame) -> Figure:
    """Fraction of weights pruned by BMR-S&S (Fig. 2): after the last epoch (bars) and over epochs (lines).

    Raises:
      ValueError: the table has no BMR-S&S rows.
    """
    _require_columns(metrics, ["dataset", "arch", "method", "seed", "epoch", "pruned_fraction"], "plot_pruned_fraction")
    data = metrics[metrics["method"] == "bmr_ss"]
    if data.empty:
        raise ValueError("plot_pruned_fraction: the metrics table has no bmr_ss rows")
    datasets = _ordered(data["dataset"], tuple(DATASET_LABELS))
    archs = _ordered(data["arch"], tuple(ARCH_LABELS))
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_bar, ax_line = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})

    last = data.loc[data.groupby(["dataset", "arch", "seed"])["epoch"].idxmax()]
    final = last.groupby(["dataset", "arch"])["pruned_fraction"].agg(["mean", "min", "max"])
    width = 0.8 / len(datasets)
    x = np.arange(len(archs))
    for i, dataset in enumerate(datasets):
        heights, low, high = [], [], []
        for arch in archs:
            if (dataset, arch) in final.index:
                entry = final.loc[(dataset, arch)]
                heights.append(entry["mean"])
                low.append(entry["mean"] - entry["min"])
                high.append(entry["max"] - entry["mean"])
            else:
                heights.append(np.nan)
                low.append(0.0)
                high.append(0.0)
        offset = (i - (len(datasets) - 1) / 2) * width
        spread = [low, high] if np.any(np.add(low, high) > 0) else None  # error bars only across several seeds
        ax_bar.bar(x + offset, heights, width, yerr=spread, label=_label(DATASET_LABELS, dataset), capsize=2)
    ax_bar.set_xticks(x, [_label(ARCH_LABELS, a) for a in archs])
    ax_bar.set_ylim(0, 1)
    ax_bar.set_ylabel("fraction of weights pruned")
    ax_bar.set_title("after the last epoch")
    ax_bar.legend(frameon=False)
    ax_bar.grid(axis="y", alpha=0.3)

    styles = ["-", "--", ":"]
    for i, dataset in enumerate(datasets):
        for j, arch in enumerate(archs):
            sel = data[(data["dataset"] == dataset) & (data["arch"] == arch)]
            if sel.empty:
                continue
            stats = sel.groupby("epoch")["pruned_fraction"].mean()
            ax_line.plot(stats.index, stats.values, styles[i % len(styles)], marker="o", ms=3, color=f"C{j}",
                         label=f"{_label(ARCH_LABELS, arch)}, {_label(DATASET_LABELS, dataset)}")
    ax_line.set_ylim(0, 1)
    ax_line.set_xlabel("epoch")
    ax_line.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_line.set_title("over epochs (epoch 0: Flat-FF warm-up)")
    ax_line.legend(frameon=False, fontsize="small")
    ax_line.grid(alpha=0.3)
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


def plot_posterior_cdf(
    summaries: Mapping[str, Mapping[str, Sequence[Mapping]]], *, floor: float = 1e-4, points: int = 512
) -> Figure:
    r"""Per-layer CDF of :math:`|E_q[w]|` (Fig. 3): one row per architecture, one column per layer.

    Args:
      summaries: ``{arch: {method: posterior_summary}}``; rows follow the order MLP, LeNet-5, ...
      floor: smallest magnitude shown on the log x-axis; smaller values (and pruned weights) sit at ``floor``.
      points: quantiles drawn per curve.
    """
    _check_summaries(summaries, "plot_posterior_cdf")
    archs = _ordered(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(_weight_layers(s)) for a in archs for s in summaries[a].values())
    fig = Figure(figsize=(2.6 * n_cols + 0.5, 2.6 * len(archs) + 0.8), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False)
    probs = np.linspace(0.0, 1.0, points)
    largest = max(float(np.max(np.abs(_weights(layer)))) for a in archs for s in summaries[a].values()
                  for layer in _weight_layers(s))
    for row, arch in enumerate(archs):
        methods = _ordered(summaries[arch], tuple(METHOD_LABELS))
        for col in range(n_cols):
            ax = axes[row, col]
            drawn = False
            for method in methods:
                layers = _weight_layers(summaries[arch][method])
                if col >= len(layers):
                    continue
                values = np.maximum(np.abs(_weights(layers[col])).ravel(), floor)
                ax.plot(np.quantile(values, probs), probs, color=METHOD_COLORS.get(method),
                        label=_label(METHOD_LABELS, method))
                title = f"{_label(ARCH_LABELS, arch)}: layer {col + 1} ({layers[col]['name']})"
                drawn = True
            if not drawn:
                ax.set_axis_off()
                continue
            ax.set_xscale("log")
            ax.set_xlim(floor / 1.5, max(largest, floor) * 1.5)  # one x-range for every panel
            ax.set_ylim(0, 1)
            ax.set_title(title, fontsize="small")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("CDF")
            ax.set_xlabel(r"$|E_q[w]|$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), frameon=False)
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


def plot_first_layer(summaries: Mapping[str, Mapping[str, Sequence[Mapping]]]) -> Figure:
    """Heat maps of the first layer's posterior means (Fig. 4): one row per architecture, one panel per method.

    Dense kernels are drawn as [output unit, input]; conv kernels as a grid of filters (input channels side by
    side). Colours share one symmetric scale per row (99th percentile of :math:`|E_q[w]|`).
    """
    _check_summaries(summaries, "plot_first_layer")
    archs = _ordered(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(summaries[a]) for a in archs)
    fig = Figure(figsize=(3.0 * n_cols + 1.0, 3.0 * len(archs) + 0.5), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False)
    for row, arch in enumerate(archs):
        methods = _ordered(summaries[arch], tuple(METHOD_LABELS))
        images = {m: _tile(_weights(_weight_layers(summaries[arch][m])[0])) for m in methods}
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
        fig.colorbar(mappable, ax=list(axes[row]), shrink=0.8, label=r"$E_q[w]$")
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
