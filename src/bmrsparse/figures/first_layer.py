"""Fig. 4 of the paper: heat maps of the first layer's posterior means, one panel per method.

Each row's colour range comes from the data (:func:`~bmrsparse.plots.plot_first_layer` without limits): the paper's
fixed ±0.2 for LeNet-5 saturated nearly every filter cell of our posteriors, hiding the filters' structure that the
paper's Fig. 4(b) shows. Loading the figure registry (the workflow's planning) imports no matplotlib.
"""

from ._registry import Figure
from .posterior_cdf import POSTERIOR_ARCHS, POSTERIOR_DATASETS


def draw(posteriors):
    """:func:`bmrsparse.plots.plot_first_layer` (matplotlib is imported when drawn)."""
    from ..plots import plot_first_layer

    return plot_first_layer(posteriors)


_CAPTION = """Posterior means of the first layer of the MLP (top row, output unit x input pixel) and LeNet-5 (bottom row, the
5x5 filters) on FashionMNIST, one panel per method (Fig. 4 of the paper; first seed). Each row has one symmetric
colour scale shared by its panels, chosen from the data: ± the 99th percentile of the absolute posterior means over
the row's unpruned weights (the paper fixes ±0.05 and ±0.2, which saturate LeNet-5's filters here); larger values take the end
colours. Pruned weights are exactly zero (white)."""

FIGURE = Figure(
    name="fig4",
    draw=draw,
    caption=_CAPTION,
    reads="posteriors",
    datasets=POSTERIOR_DATASETS,
    archs=POSTERIOR_ARCHS,
    order=12,
)
