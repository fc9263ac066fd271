r"""Sparsity-accuracy curves: prune a trained posterior by a score, without retraining, and evaluate it.

For the final Flat-FF posterior of a network, a fraction :math:`p` of its non-output weights (every parameter BMR-S&S
may prune: all layers but the output layer ``head``, biases and norm parameters included) is removed network-wide,
the lowest-scoring first, by one of three scores of the mean-field posterior
:math:`q(\hat w) = \mathcal{N}(\mu, \sigma^2)`:

============  =====================================================  ========================================
score          a weight is removed first when                         reference
============  =====================================================  ========================================
``bmr``        its log-evidence gain of removal                       eq. (19) at :math:`\theta = 0`
               :math:`\Delta F(\lambda=0) = -\frac12[\ln\sigma^2 + \mu^2/\sigma^2]` is largest  (:func:`bmrsparse.bmr.delta_f_zero`)
``magnitude``  its posterior mean :math:`|E_q[w]|` is smallest        magnitude pruning
``snr``        its signal-to-noise ratio :math:`|\mu|/\sigma` of      Graves (2011); Blundell et al. (2015)
               :math:`q(\hat w)` is smallest
============  =====================================================  ========================================

The pruned network is evaluated exactly as training evaluates (the trainer's keep-masks and posterior-predictive
mean, :func:`bmrsparse.metrics.predictive_probs`), with the same random draws for every score and fraction,
and its pruned fraction is counted by the rule of :func:`bmrsparse.metrics.pruned_fraction`, so the curves share an
axis with the retrained methods' end points (BMR-S&S and the pruning baselines).

Example::

    curve = sparsity_curve("results/train/fashion_mnist/mlp/flat_ff/seed0/posterior.npz",
                           "results/data/fashion_mnist.npz")
    fig = plot_sparsity_accuracy(curve, metrics)  # bmrsparse.plots
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import bmr, methods, metrics as bmetrics
from ._layerwise import join_split
from .state import load_state

__all__ = [
    "SCORES",
    "FRACTIONS",
    "CURVE_COLUMNS",
    "keep_scores",
    "prune_masks",
    "sparsity_curve",
]

#: The scores (their figure: :func:`bmrsparse.plots.plot_sparsity_accuracy`).
SCORES = ("bmr", "magnitude", "snr")
#: Fractions of the non-output weights removed (about ten, denser where the curves bend).
FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
#: Columns of a curve table: one row per seed, score and fraction.
CURVE_COLUMNS = ("dataset", "arch", "seed", "score", "fraction", "pruned_fraction", "acc", "nll", "ece")


# ------------------------------------------------------------------------------------------------------ scores
def keep_scores(posterior: Mapping, mean_weights: Mapping, score: str) -> dict:
    r"""How much each weight is worth keeping under ``score`` (higher: kept longer), ``{layer: {leaf: array}}``.

    Args:
      posterior: ``{layer: {leaf: (mu, sigma)}}`` of :math:`q(\hat w)` (:func:`bmrsparse.methods.layer_posteriors`).
      mean_weights: ``{layer: {leaf: E_q[w]}}`` (only read by ``"magnitude"``).
      score: ``"bmr"`` (:math:`-\Delta F(\lambda=0)`), ``"magnitude"`` (:math:`|E_q[w]|`) or ``"snr"``
        (:math:`|\mu|/\sigma`).
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {list(SCORES)}")
    out = {}
    for layer, leaves in posterior.items():
        out[layer] = {}
        for leaf, (mu, sigma) in leaves.items():
            mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
            if score == "bmr":
                value = -np.asarray(bmr.delta_f_zero(mu, sigma), np.float64)
            elif score == "snr":
                value = np.abs(mu) / sigma
            else:
                value = np.abs(np.asarray(mean_weights[layer][leaf], np.float64))
            out[layer][leaf] = value
    return out


def prune_masks(scores: Mapping, fraction: float, frozen: Sequence[str] = ()) -> dict:
    """Keep-masks removing ``round(fraction * n)`` of the ``n`` weights outside ``frozen``, lowest score first.

    The ranking is network-wide (one threshold for all layers); ties go in layer, leaf and index order, so exactly
    that many weights are removed. Frozen layers (the output layer) are always kept whole.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    ranked = {(layer, leaf): value for layer, leaves in scores.items() if layer not in frozen
              for leaf, value in leaves.items()}

    def decide(flat):
        keep = np.ones(flat.size, bool)
        keep[np.argsort(flat, kind="stable")[: int(round(float(fraction) * flat.size))]] = False
        return keep

    kept = join_split(decide, ranked, xp=np)
    return {layer: {leaf: np.ones(np.shape(value), bool) if layer in frozen else kept[(layer, leaf)]
                    for leaf, value in leaves.items()}
            for layer, leaves in scores.items()}


# ------------------------------------------------------------------------------------------------------ curves
def _leaves_of(params: Mapping, layers) -> dict:
    out = {}
    for layer in layers:
        node = params
        for key in layer.path:
            node = node[key]
        out[layer.name] = {leaf: np.asarray(node[leaf] if isinstance(node, Mapping) else node)
                           for leaf in layer.leaves}
    return out


def sparsity_curve(state_path, data_path, *, fractions: Sequence[float] = FRACTIONS,
                   scores: Sequence[str] = SCORES, settings: Mapping | None = None) -> pd.DataFrame:
    """ACC, NLL and ECE of a mean-field posterior pruned by each score at each fraction, without retraining.

    Args:
      state_path: a single-seed state file of a mean-field method (the final Flat-FF posterior).
      data_path: the prepared data set it was trained on.
      fractions: fractions of the non-output weights to remove.
      scores: which of :data:`SCORES` to rank by.
      settings: overrides of the state's training settings; the evaluation ones matter here
        (``num_eval_samples``, ``test_subset``, ``eval_batch_size``).

    Returns:
      A table with :data:`CURVE_COLUMNS`. ``fraction`` is the requested share, ``pruned_fraction`` the share of
      all weights counted as pruned by :func:`bmrsparse.metrics.pruned_fraction`. Every evaluation uses the same
      posterior draws (:func:`~bmrsparse.metrics.eval_keys` of tag 0), so the curves differ only by their
      masks.
    """
    trainer, state, head = load_state(state_path, data_path, settings=settings)
    if trainer.method.point_estimate or trainer.method.prior != "flat":
        raise ValueError(f"{state_path}: sparsity curves need a flat mean-field posterior (e.g. flat_ff), "
                         f"not {trainer.method.name!r}")
    params = jax.tree.map(lambda a: a[0], trainer.params(state))
    posterior = jax.device_get(methods.layer_posteriors(trainer.built, params))
    mean_w = _leaves_of(trainer.posterior_mean_weights(state), trainer.layers)
    kept0 = jax.tree.map(lambda m: np.asarray(m)[0], jax.device_get(state.masks))
    if not all(np.all(m) for leaves in kept0.values() for m in leaves.values()):
        raise ValueError(f"{state_path}: the posterior is already pruned; give an unpruned one (Flat-FF)")
    keys = trainer.eval_keys(0)
    num_samples = int(trainer.settings.num_eval_samples)
    rows, cache = [], {}
    for score in scores:
        ranking = keep_scores(posterior, mean_w, score)
        for fraction in fractions:
            masks = prune_masks(ranking, float(fraction), frozen=(trainer.head,))
            key = (float(fraction) if float(fraction) == 0.0 else (score, float(fraction)))
            if key not in cache:
                batched = jax.tree.map(lambda m: jnp.asarray(m)[None], masks)
                pruned_state = state._replace(masks=batched)
                probs = trainer.predictive_probs(pruned_state, keys, num_samples)[0]
                m = bmetrics.evaluate_probs(probs, trainer.y_test)
                m["pruned_fraction"] = trainer.pruned_fraction(pruned_state)[0]
                cache[key] = m
            m = cache[key]
            rows.append(dict(dataset=head["dataset"], arch=head["arch"], seed=int(head["seeds"][0]), score=score,
                             fraction=float(fraction), pruned_fraction=m["pruned_fraction"], acc=m["acc"],
                             nll=m["nll"], ece=m["ece"]))
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
