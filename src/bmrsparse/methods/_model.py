"""A method bound to a network: the NumPyro model and guide of a :class:`~bmrsparse.methods.Method` (imports JAX)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from . import flat, guides, tiered, units
from ._layers import Layer, Layout
from ._registry import Method

_PRIORS = {"flat": flat, "tiered": tiered, "units": units}


@dataclass(frozen=True)
class Built:
    """A method bound to a network: NumPyro model and guide, latent sites, and a weight sampler."""

    method: Method
    layers: list
    sites: list
    model: Callable
    guide: Callable
    weights: Callable  # weights(masks) -> Flax params; sample sites to be substituted


def build(
    method: Method, net, layers: list[Layer], *, n_data: int, preprocess: Callable, gamma0=0.1, tau0=1e-2,
    init_radius=guides.INIT_RADIUS, init_scale=guides.INIT_SCALE,
):
    """NumPyro model and guide of ``method`` for Flax ``net`` with parameter ``layers``.

    ``preprocess`` maps a raw minibatch (e.g. uint8 images) to the network's float input. The model signature is
    ``model(x, y=None, masks=None, train=False)``; with ``train=True`` and a method that uses dropout the network
    draws its dropout mask from ``numpyro.prng_key()``.
    """
    prior = _PRIORS[method.prior]
    sites = prior.sites(layers)
    kw = {"tau0": tau0} if method.prior == "tiered" else {"gamma0": gamma0}

    def weights(masks=None):
        return prior.weights(layers, masks, **kw)

    def model(x, y=None, masks=None, train=False):
        w = weights(masks)
        use_dropout = train and method.dropout
        rngs = {"dropout": numpyro.prng_key()} if use_dropout else None
        logits = net.apply({"params": w}, preprocess(x), train=use_dropout, rngs=rngs)
        with numpyro.plate("data", n_data, subsample_size=x.shape[0]):
            numpyro.sample("y", dist.Categorical(logits=logits), obs=y)
        return logits

    if method.point_estimate:
        # the authors' Flat-MAP is NumPyro's AutoDelta: locations start at the prior's median, not uniform
        guide = guides.point(sites, prior=weights)
    else:
        guide = guides.mean_field(sites, init_radius=init_radius, init_scale=init_scale)
    scale = 1.0 / n_data
    return Built(method, layers, sites, handlers.scale(model, scale), handlers.scale(guide, scale), weights)


def weights_from_latents(built: Built, latents: dict, masks=None):
    """The network's Flax params for given latent values (a posterior draw or the posterior mean)."""
    return handlers.substitute(built.weights, data=latents)(masks)


def layer_posteriors(built: Built, params: dict) -> dict:
    """``{layer: {leaf: (mu, sigma)}}`` of :math:`q(\\hat w)` from constrained guide params (for BMR)."""
    layout = Layout(built.layers)
    mu, sigma = params["w_hat.loc"], params["w_hat.scale"]
    return {
        layer.name: {leaf: (layout.leaf(mu, layer.name, leaf), layout.leaf(sigma, layer.name, leaf))
                     for leaf, _ in layer.shapes}
        for layer in built.layers
    }


def all_kept(layers: list[Layer]) -> dict:
    """Masks keeping every weight."""
    return {l.name: {leaf: jnp.ones(shape, bool) for leaf, shape in l.shapes} for l in layers}
