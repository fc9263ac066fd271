r"""Evaluation metrics on posterior-predictive probabilities.

All functions take the posterior-predictive mean probabilities ``probs`` ``[N, K]`` (already averaged over
posterior samples, :math:`\bar p_{ik} = \frac1S \sum_s p(y_i = k \mid x_i, w_s)`) and integer labels ``y`` ``[N]``,
as numpy arrays, and return Python floats.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METRIC_COLUMNS",
    "accuracy",
    "nll",
    "ece_equal_mass",
    "ece_equal_width",
    "pruned_fraction",
    "evaluate_probs",
]

_TINY = np.finfo(np.float64).tiny

#: Columns of the tidy per-epoch metrics tables that training writes (one row per seed and epoch).
METRIC_COLUMNS = (
    "dataset",
    "arch",
    "method",
    "seed",
    "epoch",
    "step",
    "acc",
    "ece",
    "ece_width15",
    "nll",
    "pruned_fraction",
    "seconds",
    "steps_per_s",
    "elbo",
)


def accuracy(probs, y) -> float:
    """Top-1 accuracy of the posterior-predictive mean."""
    probs, y = np.asarray(probs), np.asarray(y)
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def nll(probs, y) -> float:
    r"""Negative log-likelihood :math:`-\frac1N \sum_i \ln \frac1S \sum_s p(y_i \mid x_i, w_s)` (nats)."""
    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    p_true = probs[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.maximum(p_true, _TINY))))


def _ece_from_bins(conf, correct, bin_index, num_bins) -> float:
    n = len(conf)
    total = 0.0
    for b in range(num_bins):
        sel = bin_index == b
        n_b = int(np.sum(sel))
        if n_b == 0:
            continue
        total += n_b / n * abs(float(np.mean(correct[sel])) - float(np.mean(conf[sel])))
    return float(total)


def ece_equal_mass(probs, y, num_bins: int = 20) -> float:
    r"""Expected calibration error with ``num_bins`` equal-mass (quantile) bins of the top-class confidence.

    Predictions are sorted by confidence :math:`c_i = \max_k \bar p_{ik}` and split into ``num_bins`` bins of
    (as nearly as possible) equal size; :math:`\mathrm{ECE} = \sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|`.
    20 bins is the authors' reference choice (TFP's ``expected_calibration_error_quantiles``).
    """
    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    conf = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == y).astype(np.float64)
    # bin by rank, ties by value: tied confidences share the bin of their first rank (as TFP's quantile bins do)
    bin_index = np.searchsorted(np.sort(conf), conf, side="left") * num_bins // max(len(conf), 1)
    return _ece_from_bins(conf, correct, bin_index, num_bins)


def ece_equal_width(probs, y, num_bins: int = 15) -> float:
    r"""Expected calibration error with ``num_bins`` equal-width confidence bins on ``(0, 1]`` (the common choice).

    Bin :math:`b` holds confidences in :math:`(\frac{b}{B}, \frac{b+1}{B}]`.
    """
    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    conf = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == y).astype(np.float64)
    bin_index = np.clip(np.ceil(conf * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    return _ece_from_bins(conf, correct, bin_index, num_bins)


def evaluate_probs(probs, y) -> dict:
    """All predictive metrics at once: ``acc``, ``ece`` (20 equal-mass bins), ``ece_width15``, ``nll``."""
    return {
        "acc": accuracy(probs, y),
        "ece": ece_equal_mass(probs, y, 20),
        "ece_width15": ece_equal_width(probs, y, 15),
        "nll": nll(probs, y),
    }


def pruned_fraction(masks, layer_order, head: str) -> float:
    r"""Fraction of the network's weights removed by BMR.

    Counting rule (the authors'): every weight counts, biases included (a layer is the matrix
    :math:`[W; b]` of eq. 11). Pruned are (i) weights whose mask is ``False`` in every layer but the output layer
    ``head`` and (ii) the output layer's input weights from hidden units whose every incoming weight (bias included)
    is pruned -- rule (ii) applies when the layer feeding ``head`` is a dense layer whose outputs are the head's
    inputs. The denominator is the total number of weights of all layers, the output layer included.

    Args:
      masks: ``{layer: {leaf: bool array}}`` keep-masks (``True`` = kept); leaves named ``kernel`` / ``bias`` for
        dense and conv layers.
      layer_order: layer names in forward order.
      head: name of the output layer.
    """
    total = 0
    pruned = 0
    for layer in layer_order:
        for m in masks[layer].values():
            m = np.asarray(m)
            total += m.size
            if layer != head:
                pruned += int(m.size - np.count_nonzero(m))
    idx = layer_order.index(head)
    if idx > 0:
        prev = masks[layer_order[idx - 1]]
        head_kernel = np.asarray(masks[head]["kernel"]) if "kernel" in masks[head] else None
        if "kernel" in prev and head_kernel is not None and head_kernel.ndim == 2:
            k = np.asarray(prev["kernel"])
            alive = np.any(k.reshape(-1, k.shape[-1]), axis=0)
            if "bias" in prev:
                alive = alive | np.asarray(prev["bias"]).reshape(-1)
            if alive.shape[0] == head_kernel.shape[0]:
                pruned += int(np.sum(~alive)) * head_kernel.shape[1]
    return float(pruned / total) if total else 0.0
