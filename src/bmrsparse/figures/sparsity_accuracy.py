"""Beyond the paper: accuracy against sparsity of the final Flat-FF posteriors pruned without retraining
(drawn by rule plot_sparsity_accuracy of sparsity.smk from the curves of rule sparsity_curve)."""

from ._registry import Figure


_CAPTION = r"""Sparsity against accuracy (beyond the paper). The final Flat-FF posterior of each architecture is pruned without
retraining, network-wide, by three scores of its mean-field posterior: BMR"s log-evidence gain of removing a weight
:math:`\Delta F(\lambda=0)` (eq. 19), the posterior mean"s magnitude :math:`|E[w]|` and the signal-to-noise ratio
:math:`|\mu|/\sigma`; lines show ACC (top) and NLL (bottom) on the test subset against the fraction of
weights pruned (mean over seeds; the band spans the seeds when there are several). Stars mark the final epoch of the
methods that prune and retrain (BMR-S&S and the pruning baselines) at the sparsity they reached."""

FIGURE = Figure(
    name="sparsity_accuracy",
    draw="bmrsparse.sparsity:plot_sparsity_accuracy",
    caption=_CAPTION,
    reads="sparsity",
    methods=("flat_ff",),
    rule="plot_sparsity_accuracy",
    order=20,
)
