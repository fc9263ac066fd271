"""Fig. 2 of the paper: the fraction of weights BMR-S&S pruned over epochs."""

from ._registry import Figure


_CAPTION = """Fraction of weights pruned by stochastic BMR (BMR-S&S) over epochs (Fig. 2 of the paper): one panel per dataset,
one line per architecture (mean over seeds; the band spans the seeds when there are several). Epoch 0 is the
Flat-FF warm-up, before the first prune."""

FIGURE = Figure(
    name="fig2",
    draw="bmrsparse.plots:plot_pruned_fraction",
    caption=_CAPTION,
    reads="metrics",
    methods=("bmr_ss",),
    rule="plot_pruned_fraction",
    order=10,
)
