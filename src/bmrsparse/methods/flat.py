r"""The flat generative model of eq. (15): non-centred Gaussian prior with a per-layer scale.

.. math::
    c_l^{-2} \sim \Gamma(2, 2), \qquad \hat w_{ijl} \sim \mathcal{N}(0, 1), \qquad
    w_{ijl} = \gamma_0\, c_l\, \lambda_{ijl}\, \hat w_{ijl}

with :math:`\gamma_0 = 0.1` for hidden layers and :math:`\gamma_0 = 1` for the output layer (the authors' code),
and :math:`\lambda_{ijl} \in \{1, 10^{-12}\}` the BMR keep-mask (a pruned weight keeps its site but is pinned at 0).
Used by Flat-MAP, Flat-FF and BMR-S&S.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, assemble
from .guides import Site

PRUNED_SCALE = 1e-12


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the flat model, in order."""
    out = []
    for layer in layers:
        out.append(Site(f"c_inv_sqr/{layer.name}", (), positive=True))
        out.extend(Site(f"w_hat/{layer.name}/{leaf}", shape) for leaf, shape in layer.shapes)
    return out


def weights(layers: list[Layer], masks=None, *, gamma0: float = 0.1):
    """Sample the network's weights from the flat prior; returns a Flax params dict."""
    values = {}
    for layer in layers:
        c_inv_sqr = numpyro.sample(f"c_inv_sqr/{layer.name}", dist.Gamma(2.0, 2.0))
        c = jax.lax.rsqrt(c_inv_sqr) * (1.0 if layer.is_head else gamma0)
        leaves = {}
        for leaf, shape in layer.shapes:
            w_hat = numpyro.sample(
                f"w_hat/{layer.name}/{leaf}", dist.Normal(jnp.zeros(shape), 1.0).to_event(len(shape))
            )
            scale = c
            if masks is not None:
                scale = c * jnp.where(masks[layer.name][leaf], 1.0, PRUNED_SCALE)
            leaves[leaf] = scale * w_hat
        values[layer.name] = leaves
    return assemble(layers, values)
