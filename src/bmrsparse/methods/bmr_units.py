r"""BMR-S&S over units (beyond the paper): Bayesian model reduction of one scale per unit and per input.

The model is the flat model with a Gaussian scale :math:`\nu_{il}` per unit (an MLP neuron or a convolution's output
channel) and :math:`\xi_j` per input of the first layer (a pixel of the MLP, an input channel of a convolution), see
:mod:`~bmrsparse.methods.units`, with the paper's fully factorised posterior. Removing unit :math:`i` of layer
:math:`l` is the reduced prior :math:`\delta(\nu_{il})`: its weights then contribute nothing, so the unit and the
next layer's weights that read it can be cut out of the network (:mod:`bmrsparse.compact`). Its change in evidence
is eq. (19) for one Gaussian scalar,

.. math::
    \Delta F(\lambda_{il} = 0) = -\tfrac12\big[\ln \sigma_{il}^2 + \mu_{il}^2 / \sigma_{il}^2\big],
    \qquad q(\nu_{il}) = \mathcal{N}(\mu_{il}, \sigma_{il}^2),

one number per unit instead of a sum over its hundreds of weights (:mod:`~bmrsparse.methods.bmr_struct`). The
spike-and-slab prior of eq. (13) is put on the units: :math:`\lambda_{il} \sim \mathrm{Bernoulli}(\pi_l)`,
:math:`\pi_l \sim \mathrm{Beta}(\alpha_0, \beta_0)` per layer, and the fixed point of eq. (22) runs over a layer's
units (the first layer's inputs form a group of their own, with their own :math:`\pi`); a unit or input stays when
its keep-probability is at least 1/2 (eq. 23, keep rule ``bmr_keep`` as BMR-S&S). A removed unit's kernel column
(filter) and bias, and a removed input's kernel row, are pinned at zero (:math:`\lambda = 10^{-12}`); masks
accumulate. The output layer keeps all its units.

Schedule: the method trains its own model from scratch for the warm-up's steps (its epoch 0: the scales must
be learnt with the weights; the shared Flat-FF warm-up has no scales), then five epochs of (prune, train), so it
trains exactly as many SVI steps as BMR-S&S, warm-up included.
"""

from __future__ import annotations

from ._registry import Method

__all__ = ["METHOD", "unit_prune"]


def _kept(mu, sigma, *, alpha0, beta0, iters, keep):
    from .. import bmr

    return bmr._keep_q(bmr.delta_f_zero(mu, sigma), float(alpha0), float(beta0), int(iters), keep) >= 0.5


def unit_prune(posterior, masks, *, alpha0=1.0, beta0=1.0, iters=4, keep="zeta"):
    """One prune step over units and inputs: ``{layer: {leaf: bool}}`` new keep-masks (accumulating).

    Args:
      posterior: :func:`bmrsparse.methods.units.unit_posteriors`: ``{layer: (mu, sigma)}`` of each pruned layer's
        unit scales and ``{(first layer, "inputs"): (mu, sigma)}`` of the first layer's input scales.
      masks: current keep-masks ``{layer: {"kernel", "bias"}}`` of the network (other layers are returned as
        they are).
      alpha0, beta0, iters, keep: the spike-and-slab fixed point (:func:`bmrsparse.bmr.spike_and_slab`).
    """
    import jax.numpy as jnp

    new = {name: dict(leaves) for name, leaves in masks.items()}
    for key, (mu, sigma) in posterior.items():
        kept = _kept(mu, sigma, alpha0=alpha0, beta0=beta0, iters=iters, keep=keep)
        if isinstance(key, tuple):  # the first layer's inputs: the kernel's second-to-last axis
            name = key[0]
            new[name]["kernel"] = jnp.logical_and(new[name]["kernel"], kept[:, None])
        else:
            new[key]["kernel"] = jnp.logical_and(new[key]["kernel"], kept)  # broadcast over the last axis
            new[key]["bias"] = jnp.logical_and(new[key]["bias"], kept)
    return new


def prune(ctx, params, masks, reference):
    """One prune step over units and inputs with the run's settings (alpha0, beta0, bmr_iters, bmr_keep)."""
    from .units import unit_posteriors

    s = ctx.settings
    return unit_prune(unit_posteriors(ctx.built.layers, params), masks, alpha0=s["alpha0"], beta0=s["beta0"],
                      iters=int(s["bmr_iters"]), keep=s["bmr_keep"])


METHOD = Method(
    name="bmr_units",
    label="BMR-S&S (units)",
    color="#9467bd",
    prior="units",
    guide="mean_field",
    learning_rate=1e-2,  # BMR-S&S's
    start="warmup",
    per_epoch=True,
    warmup_method="bmr_units",  # the scales must be learnt with the weights: its own model's warm-up
    prune=prune,
    structured=True,
    settings=("alpha0", "beta0", "bmr_iters", "bmr_keep"),
    order=46,
    description="BMR with a spike-and-slab prior over one Gaussian scale per unit and per input",
)
