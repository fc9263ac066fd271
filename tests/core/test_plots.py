"""Tests of bmrsparse.plots on synthetic metrics and synthetic posterior summaries."""

from __future__ import annotations

import numpy as np
import pytest

from bmrsparse import plots
from conftest import METHODS, make_metrics


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
    assert len(axes) == 9  # one row per architecture x columns ACC, ECE, NLL (the paper's layout)
    assert [ax.get_title() for ax in axes[:3]] == ["ACC", "ECE", "NLL"]
    assert [ax.get_ylabel() for ax in axes[::3]] == ["MLP", "LeNet-5", "ViT"]
    assert [ax.get_xlabel() for ax in axes[6:]] == ["epoch"] * 3
    for ax in axes:
        assert len(ax.get_lines()) == len(METHODS)
        assert len(ax.collections) == len(METHODS)  # spread bands across the two seeds
        assert ax.get_legend() is None  # the legend is outside the axes
    assert len(fig.legends) == 1
    x, y = axes[0].get_lines()[3].get_data()  # MLP row, ACC column, BMR-S&S
    sel = metrics[(metrics.arch == "mlp") & (metrics.method == "bmr_ss")].groupby("epoch")["acc"]
    np.testing.assert_allclose(x, sel.mean().index)
    np.testing.assert_allclose(y, sel.mean().values)
    band = axes[0].collections[3].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(sel.min().min()) and band.max() == pytest.approx(sel.max().max())
    x, y = axes[5].get_lines()[0].get_data()  # LeNet-5 row, NLL column, Flat-MAP
    sel = metrics[(metrics.arch == "lenet") & (metrics.method == "flat_map")].groupby("epoch")["nll"].mean()
    np.testing.assert_allclose(y, sel.values)
    with pytest.raises(ValueError, match="no metrics for data set 'cifar10'"):
        plots.plot_performance(metrics, "cifar10")


def test_performance_single_seed_has_no_band():
    fig = plots.plot_performance(make_metrics(archs=("mlp",)), "fashion_mnist")
    assert all(len(ax.collections) == 0 for ax in visible_axes(fig))


def test_pruned_fraction_figure():
    metrics = make_metrics(datasets=("fashion_mnist", "cifar10"), archs=("mlp", "lenet"), seeds=(0, 1))
    metrics.loc[(metrics.seed == 1) & (metrics.arch == "lenet"), "pruned_fraction"] *= 0.5
    fig = plots.plot_pruned_fraction(metrics)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["FashionMNIST", "CIFAR-10"]  # one panel per data set
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == ["MLP", "LeNet-5"]  # one line per architecture
        assert ax.get_legend() is None  # no legend over the data
        assert ax.get_ylim() == (0, 1)
    assert len(fig.legends) == 1
    x, y = axes[1].get_lines()[1].get_data()  # CIFAR-10, LeNet-5: mean of the two seeds
    np.testing.assert_allclose(x, [0, 1, 2, 3])
    np.testing.assert_allclose(y, 0.75 * 0.8 * np.arange(4) / 3)
    mlp_band, lenet_band = (c.get_paths()[0].vertices[:, 1] for c in axes[1].collections)  # two seeds: bands
    assert np.ptp(lenet_band) == pytest.approx(0.8) and mlp_band.max() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no bmr_ss rows"):
        plots.plot_pruned_fraction(metrics[metrics.method != "bmr_ss"])


def test_posterior_cdf_figure():
    data = summaries()
    tiny = data["mlp"]["flat_ff"][0]
    tiny["mean"] = np.full_like(tiny["mean"], 1e-6)  # below 1e-4 (once clamped) but inside [e^-16, e^-1]
    fig = plots.plot_posterior_cdf(data)
    axes = fig.axes
    assert len(axes) == 2 * 3  # two rows; three weight layers at most (the norm layer is left out)
    assert len(visible_axes(fig)) == 6
    first = axes[0]
    assert first.get_title() == "MLP: layer 1 (Dense_0)"
    assert first.get_xscale() == "log"
    assert first.get_xlim() == pytest.approx((np.exp(-16), np.exp(-1)))  # the paper's x range
    assert first.get_legend() is None and len(fig.legends) == 1
    assert len(first.get_lines()) == len(METHODS)
    # Pruned weights count as zero, at the left edge: BMR-S&S's CDF there is about the pruned fraction (half).
    x, y = first.get_lines()[3].get_data()
    assert x[0] == pytest.approx(np.exp(-16))
    assert y[0] == pytest.approx(0.5, abs=0.02)
    # No clamping: weights of 1e-6 are below x only from x > 1e-6 on, not at the left edge.
    x, y = first.get_lines()[1].get_data()
    assert np.all(y[x <= 1e-6] == 0) and np.all(y[x > 1e-6] == 1)
    assert axes[3].get_title() == "LeNet-5: layer 1 (Conv_0)"


def test_posterior_cdf_single_row_hides_missing_layers():
    data = summaries(archs=("lenet",), methods=("flat_ff", "bmr_ss"))
    data["lenet"]["flat_ff"] = data["lenet"]["flat_ff"][:1]  # one layer only
    fig = plots.plot_posterior_cdf(data)
    assert len(fig.axes) == 3
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1, 1]


def test_first_layer_heatmaps():
    from bmrsparse import figures

    fig = figures.get_figure("fig4").drawer()(summaries())  # as the workflow draws it: limits from the data
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * len(METHODS)
    mlp_image = images[0].images[0].get_array()
    assert mlp_image.shape == (16, 784)  # [output unit, input]
    lenet_image = images[len(METHODS)].images[0].get_array()
    assert lenet_image.shape == (2 * 6 - 1, 3 * 6 - 1)  # six 5x5 filters on a 2x3 grid with 1-pixel gaps
    bmr = images[3].images[0].get_array()
    assert np.mean(np.asarray(bmr) == 0.0) == pytest.approx(0.5, abs=0.02)  # pruned weights drawn as zero
    # One symmetric colour scale per row, shared by the methods' panels and chosen from the data: the 99th percentile
    # of |E_q[w]| over the row's unpruned weights (the paper's fixed +-0.2 saturated LeNet-5's filters)
    for row in (images[:len(METHODS)], images[len(METHODS):]):
        clims = {ax.images[0].get_clim() for ax in row}
        assert len(clims) == 1
        values = np.concatenate([np.abs(np.asarray(ax.images[0].get_array()).ravel()) for ax in row])
        values = values[np.isfinite(values) & (values != 0)]
        lo, hi = next(iter(clims))
        assert lo == -hi and hi == pytest.approx(np.percentile(values, 99), rel=1e-6)
        assert np.mean(values > hi) == pytest.approx(0.01, abs=0.005)  # 1 % of the cells saturate, not nearly all
    fig = plots.plot_first_layer(summaries(), limits={"mlp": 1.5})
    images = [ax for ax in fig.axes if ax.images]
    assert images[0].images[0].get_clim() == (-1.5, 1.5)
    lenet = {ax.images[0].get_clim() for ax in images[len(METHODS):]}  # no fixed limit: 99th percentile
    assert len(lenet) == 1 and next(iter(lenet))[1] > 1.0


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


def test_figure_registry_plans_what_applies_and_draws_by_name():
    from bmrsparse import figures

    names = list(figures.FIGURES)
    assert names[:3] == ["fig1", "figS1", "figS2"]  # the datasets' performance figures, in the datasets' order
    assert {"fig2", "fig3", "fig4", "sparsity_accuracy"} <= set(names)

    def planned(datasets, archs, methods):
        return sorted(n for n, f in figures.FIGURES.items() if f.applies(datasets, archs, methods))

    assert planned(["fashion_mnist"], ["mlp", "lenet"], ["flat_ff", "bmr_ss"]) == [
        "fig1", "fig2", "fig3", "fig4", "sparsity_accuracy"]
    assert planned(["cifar10"], ["mixer"], ["flat_map"]) == ["figS1"]  # no BMR-S&S, no FashionMNIST MLP/LeNet-5
    assert figures.FIGURES["fig3"].panel_archs(["vit", "lenet", "mlp"]) == ["mlp", "lenet"]  # its own order
    assert figures.get_figure("fig1").draw_args == {"dataset": "fashion_mnist"}

    fig = figures.draw_figure("fig2", make_metrics(archs=("mlp",)))
    assert fig.axes[0].get_ylabel() == "pruned fraction"
    with pytest.raises(ValueError, match="unknown figure 'fig9'"):
        figures.get_figure("fig9")
    with pytest.raises(ValueError, match="performance figure of a registered dataset"):
        figures.register(figures.Figure(name="fig1", caption="", draw=plots.plot_performance))
    with pytest.raises(ValueError, match="draw must be a function"):  # not a name to import: the function itself
        figures.Figure(name="x", caption="", draw="bmrsparse.plots:plot_performance")
    with pytest.raises(ValueError, match="reads must be one of"):
        figures.Figure(name="x", caption="", draw=print, reads="logs")
