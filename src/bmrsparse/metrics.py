r"""Evaluation metrics on posterior-predictive probabilities.

The metric functions take the posterior-predictive mean probabilities ``probs`` ``[N, K]`` (already averaged over
posterior samples, :math:`\bar p_{ik} = \frac1S \sum_s p(y_i = k \mid x_i, w_s)`) and integer labels ``y`` ``[N]``,
as numpy arrays, and return Python floats.

Evaluating a trained network (JAX, imported on first use): :func:`predictive_probs` computes those probabilities
from guide parameters and keep-masks of a :class:`bmrsparse.train.Model`, :func:`evaluate_state` the metrics of
every seed, :func:`posterior_mean_weights` :math:`E_q[w]`, :func:`pruned_fractions` the pruned share per seed.
"""

from __future__ import annotations

import math

import numpy as np

from . import methods

__all__ = [
    "METRIC_COLUMNS",
    "accuracy",
    "nll",
    "CHANCE_MULTIPLE",
    "at_chance",
    "ece_equal_mass",
    "ece_equal_width",
    "pruned_fraction",
    "evaluate_probs",
    "EVAL_KEY_TAG",
    "eval_keys",
    "predictive_probs",
    "evaluate_state",
    "posterior_mean_weights",
    "pruned_fractions",
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
    "eval_samples",
    "eval_images",
)


def accuracy(probs, y) -> float:
    """Top-1 accuracy of the posterior-predictive mean."""
    probs, y = np.asarray(probs), np.asarray(y)
    return float(np.mean(np.argmax(probs, axis=-1) == y))


#: A run whose top-1 accuracy is below this multiple of chance (``1 / num_classes``) is judged collapsed.
CHANCE_MULTIPLE = 2.0


def at_chance(acc: float, num_classes: int) -> bool:
    r"""Whether a run with top-1 accuracy ``acc`` on ``num_classes`` labels predicts at about chance level: its
    posterior collapsed (e.g. Tiered-FF when a seed's initial global scales :math:`v_l` are small enough that the
    horseshoe prior switches every unit off before the likelihood's gradient arrives; docs/tiered-collapse.md).

    Such a network predicts (nearly) the uniform distribution, so its ECE is near 0 and its NLL near
    :math:`\ln K` by construction: neither says anything about calibration. The rule: ``acc < CHANCE_MULTIPLE /
    num_classes`` (FashionMNIST and CIFAR-10: below 0.2; CIFAR-100: below 0.02). A NaN accuracy is not at chance.
    """
    if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 2):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return bool(acc < CHANCE_MULTIPLE / num_classes)


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


# ------------------------------------------------------------------------------------------------ trained networks
#: Folded into a seed's key, plus the evaluation's tag (the epoch), for its evaluation draws.
EVAL_KEY_TAG = 1_000_003


def eval_keys(seeds, tag: int):
    """One PRNG key per seed for evaluation ``tag`` (e.g. the epoch): independent of the other seeds, so a resumed
    run or a run of one seed draws the same ones."""
    import jax
    import jax.numpy as jnp

    return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(s)), EVAL_KEY_TAG + int(tag)) for s in seeds])


def predictive_probs(model, params, masks, keys, x, *, num_samples: int) -> np.ndarray:
    r"""Posterior-predictive mean :math:`\frac1S\sum_s p(y \mid x, w_s)` of images ``x``, ``[seeds, N, K]``.

    Args:
      model: a :class:`bmrsparse.model.Model`.
      params: constrained guide parameters with a leading seed axis (:meth:`bmrsparse.train.Trainer.params`).
      masks: keep-masks ``{layer: {leaf: bool}}``, leading seed axis.
      keys: one PRNG key per seed (:func:`eval_keys`).
      x: uint8 images ``[N, H, W, C]``, evaluated ``eval_batch_size`` (setting) at a time.
      num_samples: posterior samples :math:`S` (a point estimate uses 1).
    """
    import jax
    import jax.numpy as jnp

    built, net, pre = model.built, model.net, model.preprocess
    point = model.method.point_estimate
    s = 1 if point else int(num_samples)
    bs = int(model.settings.eval_batch_size)
    x = np.asarray(x)
    n = len(x)
    n_pad = math.ceil(n / bs) * bs
    padded = np.zeros((n_pad,) + x.shape[1:], x.dtype)
    padded[:n] = x
    padded = jnp.asarray(padded.reshape((n_pad // bs, bs) + x.shape[1:]))
    predict = model.compiled.get(("predict", s))
    if predict is None:
        num_classes = model.num_classes

        def one_seed(params, masks, key, xb_all):
            def one_sample(acc, k):
                lat = methods.guides.sample_latents(built.sites, params, k, point_estimate=point)
                w = methods.weights_from_latents(built, lat, masks)
                probs = jax.lax.map(lambda xb: jax.nn.softmax(net.apply({"params": w}, pre(xb))), xb_all)
                return acc + probs, None

            k0 = jnp.zeros(xb_all.shape[:2] + (num_classes,), jnp.float32)
            acc, _ = jax.lax.scan(one_sample, k0, jax.random.split(key, s))
            return acc / s

        predict = model.compiled[("predict", s)] = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None)))
    # the backend's convolution lowering, as the training step's (on CPU the rows' matrix product, which is faster
    # there than XLA's own convolution, forward only too, and stays so with seeds vmapped: docs/performance.md)
    probs = np.asarray(predict(params, masks, keys, padded))
    return probs.reshape(len(keys), n_pad, -1)[:, :n]


def pruned_fractions(model, masks) -> list[float]:
    """Fraction of weights pruned per seed of keep-masks with a leading seed axis (rule: :func:`pruned_fraction`)."""
    import jax

    masks = jax.device_get(masks)
    order = [l.name for l in model.layers]
    seeds = len(next(iter(next(iter(masks.values())).values())))
    return [pruned_fraction(jax.tree.map(lambda m: m[i], masks), order, model.head) for i in range(seeds)]


def evaluate_state(model, params, masks, x, y, keys, *, num_samples: int) -> list[dict]:
    """Per seed: ``acc``, ``ece``, ``ece_width15``, ``nll`` on images ``x`` with labels ``y`` and the
    ``pruned_fraction``. ``keys`` (:func:`eval_keys` of a tag such as the epoch) select the random draws, so a
    resumed run draws the same ones; the other arguments are as for :func:`predictive_probs`."""
    probs = predictive_probs(model, params, masks, keys, x, num_samples=num_samples)
    out = []
    for p, f in zip(probs, pruned_fractions(model, masks)):
        m = evaluate_probs(p, np.asarray(y))
        m["pruned_fraction"] = f
        out.append(m)
    return out


def posterior_mean_weights(model, params, masks, key=None, num_draws: int = 256) -> dict:
    r"""Posterior mean :math:`E_q[w]` of every weight as a Flax params dict, for one seed.

    ``params`` and ``masks`` are one seed's (no seed axis). Under the mean-field posterior :math:`w = \gamma \hat w`
    with the scale :math:`\gamma` independent of :math:`\hat w`, so :math:`E[w] = E[\gamma]\, E[\hat w] =
    E[\gamma]\, \mu`: :math:`\hat w` is held at its mean :math:`\mu`, never sampled. :math:`E[\gamma]` is exact
    where the posterior allows: for point estimates, and for the flat prior, whose scale
    :math:`c = (c^{-2})^{-1/2}` with :math:`q(c^{-2}) = \mathcal{LN}(m, s^2)` has :math:`E[c] = e^{-m/2 + s^2/8}`
    (obtained by evaluating the model at :math:`c^{-2} = e^{m - s^2/4}`). The tiered prior's :math:`\gamma`
    (eq. 17) has no closed-form mean; it is averaged over ``num_draws`` draws of the scale variables alone
    (``key``, default ``PRNGKey(0)``).
    """
    import jax
    import jax.numpy as jnp

    built, point = model.built, model.method.point_estimate
    key = jax.random.PRNGKey(0) if key is None else key
    exact = point or model.method.prior in ("flat", "units")
    draws = 1 if exact else num_draws

    @jax.jit
    def mean_w(params, masks, key):
        def one(k):
            lat = methods.guides.sample_latents(built.sites, params, k, point_estimate=point)
            for site in built.sites:  # the Gaussian sites (w_hat, the units model's scales) at their means
                if not site.positive:
                    lat[site.name] = params[f"{site.name}.loc"]
            if exact and not point:
                m, s = params["c_inv_sqr.loc"], params["c_inv_sqr.scale"]
                lat["c_inv_sqr"] = jnp.exp(m - 0.25 * s**2)
            return methods.weights_from_latents(built, lat, masks)

        ws = jax.lax.map(one, jax.random.split(key, draws))
        return jax.tree.map(lambda a: jnp.mean(a, axis=0), ws)

    return jax.device_get(mean_w(params, masks, key))
