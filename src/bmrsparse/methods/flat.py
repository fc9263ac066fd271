r"""The flat generative model of eq. (15): non-centred Gaussian prior with a per-layer scale.

.. math::
    c_l^{-2} \sim \Gamma(2, 2), \qquad \hat w_{ijl} \sim \mathcal{N}(0, 1), \qquad
    w_{ijl} = \gamma_0\, c_l\, \lambda_{ijl}\, \hat w_{ijl}

with :math:`\gamma_0 = 0.1` for hidden layers and :math:`\gamma_0 = 1` for the output layer (the authors' code),
and :math:`\lambda_{ijl} \in \{1, 10^{-12}\}` the BMR keep-mask (a pruned weight keeps its site but is pinned at 0).
Used by Flat-MAP, Flat-FF and BMR-S&S. Sites: ``c_inv_sqr`` ``[L]`` and ``w_hat`` ``[P]`` (all weights, see
:class:`~bmrsparse.methods._layers.Layout`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, Layout, assemble
from .guides import Site

PRUNED_SCALE = 1e-12


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the flat model, in order."""
    return [Site("c_inv_sqr", (len(layers),), positive=True), Site("w_hat", (Layout(layers).size,))]


def w_hat_prior(size: int):
    r""":math:`\hat w \sim \mathcal{N}(0, 1)` over all ``size`` weights (one event), shared with the tiered model.

    Without NumPyro's per-value support check: every finite value is in a Normal's support, so the check only
    added a pass over the ~10^6 weights to every step (the same numbers).
    """
    return dist.Normal(jnp.zeros(size), 1.0, validate_args=False).to_event(1)


def weights(layers: list[Layer], masks=None, *, gamma0: float = 0.1):
    """Sample the network's weights from the flat prior; returns a Flax params dict."""
    layout = Layout(layers)
    c_inv_sqr = numpyro.sample("c_inv_sqr", dist.Gamma(jnp.full(len(layers), 2.0), 2.0).to_event(1))
    factor = jnp.asarray([1.0 if layer.is_head else gamma0 for layer in layers])
    c = jax.lax.rsqrt(c_inv_sqr) * factor
    w_hat = numpyro.sample("w_hat", w_hat_prior(layout.size))
    values = {}
    for i, layer in enumerate(layers):
        leaves = {}
        for leaf, _ in layer.shapes:
            scale = c[i]
            if masks is not None:
                scale = scale * jnp.where(masks[layer.name][leaf], 1.0, PRUNED_SCALE)
            leaves[leaf] = scale * layout.leaf(w_hat, layer.name, leaf)
        values[layer.name] = leaves
    return assemble(layers, values)
