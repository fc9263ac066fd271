"""Fig. 3 of the paper: per-layer CDF of |E_q[w]| of the final posteriors, methods overlaid."""

from ._registry import Figure


def draw(posteriors):
    """:func:`bmrsparse.plots.plot_posterior_cdf` (matplotlib is imported when drawn)."""
    from ..plots import plot_posterior_cdf

    return plot_posterior_cdf(posteriors)


#: The paper draws Figs. 3 and 4 for these networks on this dataset (first seed).
POSTERIOR_DATASETS = ("fashion_mnist",)
POSTERIOR_ARCHS = ("mlp", "lenet")


_CAPTION = r"""Cumulative distribution :math:`\Pr(|E_q[w]| < x)` of the absolute posterior means per layer of the MLP (top row)
and LeNet-5 (bottom row) on FashionMNIST, methods overlaid (Fig. 3 of the paper; first seed). The x-axis is the
paper's, :math:`e^{-16}` to :math:`e^{-1}` on a log scale, with markers at :math:`x = e^{-16}, e^{-15}, \dots, e^{-1}`.
Nothing is clamped: weights pruned by BMR are exactly zero and, with every other weight below :math:`e^{-16}`, are
counted at the left edge (the value of a curve there is that fraction); a curve ends below 1 when some weights
exceed :math:`e^{-1}`."""

FIGURE = Figure(
    name="fig3",
    draw=draw,
    caption=_CAPTION,
    reads="posteriors",
    datasets=POSTERIOR_DATASETS,
    archs=POSTERIOR_ARCHS,
    order=11,
)
