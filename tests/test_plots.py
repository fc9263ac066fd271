"""Tests of bmrsparse.plots on synthetic metrics and synthetic posterior summaries."""

from __future__ import annotations

import numpy as np
import pytest

from bmrsparse import plots
from test_tables import METHODS, make_metrics


def summary(arch: str, method: str, seed: int = 0) -> list[dict]:
    """A posterior summary shaped like posterior_summary's for a small MLP or LeNet-5."""
    rng = np.random.default_rng(seed)
    if arch == "mlp":
        shapes = [("Dense_0", "dense", (784, 16)), ("Dense_1", "dense", (16, 16)), ("head", "dense", (16, 10))]
    else:
        shapes = [("Conv_0", "conv", (5, 5, 1, 6)), ("Conv_1", "conv", (5, 5, 6, 16)), ("norm", "norm", (16,)),
                  ("head", "dense", (16, 10))]
    out = []
    for name, kind, shape in shapes:
        mean = rng.normal(size=shape)
        pruned = (rng.uniform(size=shape) < 0.5) if method == "bmr_ss" and name != "head" else None
        out.append({"name": name, "kind": kind, "mean": mean, "pruned": pruned})
    return out


def summaries(archs=("mlp", "lenet"), methods=METHODS):
    return {a: {m: summary(a, m) for m in methods} for a in archs}


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_performance_figure_layout():
    metrics = make_metrics(archs=("mlp", "lenet", "vit"), seeds=(0, 1), noise=0.01)
    fig = plots.plot_performance(metrics, "fashion_mnist")
    axes = visible_axes(fig)
    assert len(axes) == 9  # rows ACC, ECE, NLL x three architectures
    assert [ax.get_title() for ax in axes[:3]] == ["MLP", "LeNet-5", "ViT"]
    assert [ax.get_ylabel() for ax in axes[::3]] == ["ACC", "ECE", "NLL"]
    for ax in axes:
        assert len(ax.get_lines()) == len(METHODS)
        assert len(ax.collections) == len(METHODS)  # spread bands across the two seeds
    x, y = axes[0].get_lines()[3].get_data()  # BMR-S&S accuracy
    sel = metrics[(metrics.arch == "mlp") & (metrics.method == "bmr_ss")].groupby("epoch")["acc"].mean()
    np.testing.assert_allclose(x, sel.index)
    np.testing.assert_allclose(y, sel.values)
    with pytest.raises(ValueError, match="no metrics for data set 'cifar10'"):
        plots.plot_performance(metrics, "cifar10")


def test_performance_single_seed_has_no_band():
    fig = plots.plot_performance(make_metrics(archs=("mlp",)), "fashion_mnist")
    assert all(len(ax.collections) == 0 for ax in visible_axes(fig))


def test_pruned_fraction_figure():
    metrics = make_metrics(datasets=("fashion_mnist", "cifar10"), archs=("mlp", "lenet"))
    fig = plots.plot_pruned_fraction(metrics)
    ax_bar, ax_line = fig.axes[:2]
    heights = [p.get_height() for p in ax_bar.patches]
    assert heights == pytest.approx([0.8] * 4)
    assert len(ax_line.get_lines()) == 4
    with pytest.raises(ValueError, match="no bmr_ss rows"):
        plots.plot_pruned_fraction(metrics[metrics.method != "bmr_ss"])


def test_posterior_cdf_figure():
    fig = plots.plot_posterior_cdf(summaries())
    axes = fig.axes
    assert len(axes) == 2 * 3  # two rows; three weight layers at most (the norm layer is left out)
    assert len(visible_axes(fig)) == 6
    first = axes[0]
    assert first.get_title() == "MLP: layer 1 (Dense_0)"
    assert first.get_xscale() == "log"
    assert len(first.get_lines()) == len(METHODS)
    # Pruned weights count as zero: BMR-S&S's CDF starts at about the pruned fraction (half here).
    bmr = first.get_lines()[3]
    x, y = bmr.get_data()
    assert y[np.searchsorted(x, 1e-4, side="right") - 1] == pytest.approx(0.5, abs=0.02)
    assert axes[3].get_title() == "LeNet-5: layer 1 (Conv_0)"


def test_posterior_cdf_single_row_hides_missing_layers():
    data = summaries(archs=("lenet",), methods=("flat_ff", "bmr_ss"))
    data["lenet"]["flat_ff"] = data["lenet"]["flat_ff"][:1]  # one layer only
    fig = plots.plot_posterior_cdf(data)
    assert len(fig.axes) == 3
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1, 1]


def test_first_layer_heatmaps():
    fig = plots.plot_first_layer(summaries())
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * len(METHODS)
    mlp_image = images[0].images[0].get_array()
    assert mlp_image.shape == (16, 784)  # [output unit, input]
    lenet_image = images[len(METHODS)].images[0].get_array()
    assert lenet_image.shape == (2 * 6 - 1, 3 * 6 - 1)  # six 5x5 filters on a 2x3 grid with 1-pixel gaps
    bmr = images[3].images[0].get_array()
    assert np.mean(np.asarray(bmr) == 0.0) == pytest.approx(0.5, abs=0.02)  # pruned weights drawn as zero
    clim = {ax.images[0].get_clim() for ax in images[:len(METHODS)]}
    assert len(clim) == 1  # one colour scale per row


def test_summary_validation():
    bad = summaries(archs=("mlp",), methods=("bmr_ss",))
    bad["mlp"]["bmr_ss"][0]["pruned"] = np.zeros((3, 3), bool)
    with pytest.raises(ValueError, match="does not match"):
        plots.plot_first_layer(bad)
    with pytest.raises(ValueError, match="no posterior summaries"):
        plots.plot_posterior_cdf({})
    with pytest.raises(ValueError, match="no dense or conv layer"):
        plots.plot_posterior_cdf({"mlp": {"flat_ff": [{"name": "n", "kind": "norm", "mean": np.ones(3),
                                                        "pruned": None}]}})


def test_save_figure_writes_both_formats(tmp_path):
    fig = plots.plot_pruned_fraction(make_metrics(archs=("mlp",)))
    pdf, png = tmp_path / "sub" / "fig2.pdf", tmp_path / "sub" / "fig2.png"
    plots.save_figure(fig, pdf, png)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig2.pdf", "fig2.png"]
    with pytest.raises(ValueError, match="no suffix"):
        plots.save_figure(fig, tmp_path / "fig")
