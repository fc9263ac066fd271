"""Fig. 4 of the paper: heat maps of the first layer's posterior means, one panel per method.

The paper's colour limits are declared here, with the figure (:data:`LIMITS`), and passed to
:func:`~bmrsparse.plots.plot_first_layer` as ``draw_args``: the drawing code names no network, and loading the figure
registry (the workflow's planning) imports no matplotlib.
"""

from ._registry import Figure
from .posterior_cdf import POSTERIOR_ARCHS, POSTERIOR_DATASETS

#: The paper's fixed symmetric colour limits per network (a network not named here: the 99th percentile of |E_q[w]|).
LIMITS = {"mlp": 0.05, "lenet": 0.2}


def draw(posteriors, limits):
    """:func:`bmrsparse.plots.plot_first_layer` (matplotlib is imported when drawn)."""
    from ..plots import plot_first_layer

    return plot_first_layer(posteriors, limits=limits)


_CAPTION = """Posterior means of the first layer of the MLP (top row, output unit x input pixel) and LeNet-5 (bottom row, the
5x5 filters) on FashionMNIST, one panel per method (Fig. 4 of the paper; first seed). Each row has one fixed
symmetric colour scale shared by its panels, the paper's: ±0.05 for the MLP, ±0.2 for LeNet-5; larger values take
the end colours. Pruned weights are exactly zero (white)."""

FIGURE = Figure(
    name="fig4",
    draw=draw,
    caption=_CAPTION,
    reads="posteriors",
    datasets=POSTERIOR_DATASETS,
    archs=POSTERIOR_ARCHS,
    draw_args={"limits": LIMITS},
    order=12,
)
