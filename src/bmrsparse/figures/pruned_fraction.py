"""Fig. 2 of the paper: the fraction of weights BMR-S&S pruned over epochs."""

from ._registry import Figure


_CAPTION = """Fraction of weights pruned by stochastic BMR (BMR-S&S) over epochs (Fig. 2 of the paper): one panel per dataset,
one line per architecture (mean over seeds; the band spans the seeds when there are several). Epoch 0 is the
Flat-FF warm-up, before the first prune. When the run's BMR-S&S has the schedule and settings of the authors'
side-by-side runs (FashionMNIST, 1e4 + 5 x 2e3 steps, learning rate 1e-2: the quick profile), the hatched band behind
a line is the range of the authors' code over its seeds (the figure's log says whether it is drawn, and why not)."""


def draw(metrics, reference=None):
    """:func:`bmrsparse.plots.plot_pruned_fraction`, with the authors' range (``{dataset: band}``) behind the
    networks whose run is comparable to it, when the workflow gives one (matplotlib is imported when drawn)."""
    from ..plots import plot_pruned_fraction

    return plot_pruned_fraction(metrics, reference)


FIGURE = Figure(
    name="fig2",
    draw=draw,
    caption=_CAPTION,
    reads="metrics",
    methods=("bmr_ss",),
    order=10,
)
