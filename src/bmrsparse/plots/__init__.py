"""Every figure's drawing function, from the tidy metrics table, posterior summaries or a measurement table.

- :func:`plot_performance`: Fig. 1 (FashionMNIST), S1 (CIFAR-10), S2 (CIFAR-100): one row per architecture,
  columns ACC, ECE, NLL; one line per method over epochs (mean over seeds, band = min..max when several seeds).
- :func:`plot_pruned_fraction`: Fig. 2, one panel per data set: the fraction of weights BMR-S&S pruned over
  epochs, one line per architecture.
- :func:`plot_posterior_cdf`: Fig. 3, per-layer CDF of :math:`|E_q[w]|` on :math:`[e^{-16}, e^{-1}]`, MLP (top
  row) and LeNet-5 (bottom row), methods overlaid.
- :func:`plot_first_layer`: Fig. 4, heat maps of the first layer's posterior means, one panel per method, one
  fixed symmetric colour scale per architecture.
- :func:`plot_sparsity_accuracy` (beyond the paper): ACC and NLL against the pruned fraction, pruned without
  retraining (:mod:`bmrsparse.sparsity`) and retrained.
- :func:`plot_speedup_accuracy` (beyond the paper): accuracy against the measured inference speed-up
  (:mod:`bmrsparse.inference`).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state, no display
needed); :func:`save_figure` writes it atomically in the formats given by the file suffixes.

Posterior summaries are the lists returned by :func:`bmrsparse.experiment.posterior_summary`: one dict per layer
``{name, kind, mean, pruned}`` in forward order. Weights BMR pruned are drawn as exactly zero. Which figure the
workflow draws with which function is declared in :mod:`bmrsparse.figures`.

Example::

    fig = plot_performance(metrics, "fashion_mnist")
    save_figure(fig, "results/figures/fig1.pdf", "results/figures/fig1.png")
"""

from ._style import (ARCH_LABELS, DATASET_LABELS, METHOD_COLORS, METHOD_LABELS, PERFORMANCE_FIGURES,
                     save_figure)
from .performance import plot_performance, plot_pruned_fraction
from .posteriors import CDF_RANGE, plot_first_layer, plot_posterior_cdf
from .sparsity_accuracy import plot_sparsity_accuracy
from .speedup_accuracy import plot_speedup_accuracy

__all__ = [
    "METHOD_LABELS",
    "ARCH_LABELS",
    "DATASET_LABELS",
    "METHOD_COLORS",
    "PERFORMANCE_FIGURES",
    "plot_performance",
    "plot_pruned_fraction",
    "plot_posterior_cdf",
    "plot_first_layer",
    "plot_sparsity_accuracy",
    "plot_speedup_accuracy",
    "save_figure",
    "CDF_RANGE",
]
