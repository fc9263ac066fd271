"""Figs. 3 and 4 of the paper, from posterior summaries (:func:`bmrsparse.experiment.posterior_summary`): the
per-layer CDF of :math:`|E_q[w]|` and the first layer's posterior means."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter

from ._style import ARCH_LABELS, METHOD_COLORS, METHOD_LABELS, in_order, label_of

__all__ = ["plot_posterior_cdf", "plot_first_layer", "CDF_RANGE"]


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
    archs = in_order(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(_weight_layers(s)) for a in archs for s in summaries[a].values())
    fig = Figure(figsize=(2.5 * n_cols + 1.8, 2.4 * len(archs) + 0.6), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False, sharey=True)
    low, high = -16, -1
    steps = (high - low) * points_per_unit
    xs = np.exp(np.linspace(low, high, steps + 1))
    for row, arch in enumerate(archs):
        methods = in_order(summaries[arch], tuple(METHOD_LABELS))
        for col in range(n_cols):
            ax = axes[row, col]
            title = None
            for method in methods:
                layers = _weight_layers(summaries[arch][method])
                if col >= len(layers):
                    continue
                ax.plot(xs, _cdf(_weights(layers[col]), xs), ":", marker="o", ms=3, markevery=points_per_unit,
                        color=METHOD_COLORS.get(method), label=label_of(METHOD_LABELS, method))
                title = f"{label_of(ARCH_LABELS, arch)}: layer {col + 1} ({layers[col]['name']})"
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
    side). Every row has one symmetric colour scale shared by its methods' panels: ``limits[arch]`` when given,
    else chosen from the data, ± the 99th percentile of |E_q[w]| over the row's unpruned (non-zero) weights, so that
    a row's structure is visible whatever its scale (Fig. 4 uses the data's). Values beyond the limit take the end
    colours (the colour bar's arrows). Pruned weights are exactly zero (white).
    """
    _check_summaries(summaries, "plot_first_layer")
    limits = dict(limits or {})
    archs = in_order(summaries, tuple(ARCH_LABELS))
    n_cols = max(len(summaries[a]) for a in archs)
    fig = Figure(figsize=(3.0 * n_cols + 1.0, 3.0 * len(archs) + 0.5), layout="constrained")
    axes = fig.subplots(len(archs), n_cols, squeeze=False)
    for row, arch in enumerate(archs):
        methods = in_order(summaries[arch], tuple(METHOD_LABELS))
        images = {m: _tile(_weights(_weight_layers(summaries[arch][m])[0])) for m in methods}
        vmax = limits.get(arch)
        if vmax is None:
            values = np.concatenate([np.abs(im[np.isfinite(im) & (im != 0)]) for im in images.values()])
            vmax = float(np.percentile(values, 99)) if values.size else 1.0
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
            ax.set_title(f"{label_of(ARCH_LABELS, arch)}, {label_of(METHOD_LABELS, method)}", fontsize="small")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel("output unit" if first["kind"] == "dense" else "filters")
        fig.colorbar(mappable, ax=list(axes[row]), shrink=0.8, extend="both", label=r"$E_q[w]$")
    return fig
