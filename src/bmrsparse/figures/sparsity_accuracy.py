"""Beyond the paper: accuracy against sparsity of the final Flat-FF posteriors pruned without retraining (from the
sparsity curves of :func:`bmrsparse.sparsity.sparsity_curve`, with the final epochs of the pruning methods)."""

from ._registry import Figure


def draw(curves, metrics=None):
    """:func:`bmrsparse.plots.plot_sparsity_accuracy` (matplotlib is imported when drawn)."""
    from ..plots import plot_sparsity_accuracy

    return plot_sparsity_accuracy(curves, metrics)


_CAPTION = r"""Sparsity against accuracy (beyond the paper). The final Flat-FF posterior of each architecture is pruned without
retraining, network-wide, by three scores of its mean-field posterior: BMR"s log-evidence gain of removing a weight
:math:`\Delta F(\lambda=0)` (eq. 19), the posterior mean"s magnitude :math:`|E[w]|` and the signal-to-noise ratio
:math:`|\mu|/\sigma`; lines show ACC (top) and NLL (bottom) on the test subset against the fraction of
weights pruned (mean over seeds; the band spans the seeds when there are several). Stars mark the final epoch of the
methods that prune and retrain (BMR-S&S and the pruning baselines) at the sparsity they reached."""

FIGURE = Figure(
    name="sparsity_accuracy",
    draw=draw,
    caption=_CAPTION,
    reads="sparsity",
    methods=("flat_ff",),
    order=20,
)
