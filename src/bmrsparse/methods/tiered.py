r"""The tiered generative model of eq. (17): regularised-horseshoe prior in the non-centred form.

.. math::
    c_l^{-2} \sim \Gamma(2, 6), \quad a_{il}, b_{il}, \hat a_l, \hat b_l \sim \Gamma(\tfrac12, 1), \quad
    \tau_{il} = \sqrt{a_{il}/b_{il}}, \quad v_l = \tau_0 \sqrt{\hat a_l / \hat b_l}, \\
    \gamma_{il}^2 = \frac{c_l^2 v_l^2 \tau_{il}^2}{c_l^2 + v_l^2 \tau_{il}^2}, \quad
    \hat w_{ijl} \sim \mathcal{N}(0, 1), \quad w_{ijl} = \gamma_{il} \hat w_{ijl}

Each half-Cauchy is the square root of a ratio of two Gamma(1/2, 1) variables (Appendix B, eq. 26). Rows
:math:`i` are a layer's output units. LayerNorm and other free parameters get only the layer-wide scale
:math:`\gamma_l^2 = c_l^2 v_l^2 / (c_l^2 + v_l^2)`; the output layer gets only a half-Cauchy global scale
:math:`\gamma_L = \sqrt{\hat a_L / \hat b_L} \sim \mathcal{C}^+(0, 1)`, without :math:`c` or :math:`\tau_0`
(both as in the authors' code). :math:`\tau_0 = 10^{-2}`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, assemble, row_broadcast
from .guides import Site


def _has_rows(layer: Layer) -> bool:
    return layer.rows is not None and not layer.is_head


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the tiered model, in order."""
    out = []
    for layer in layers:
        n = layer.name
        if not layer.is_head:
            out.append(Site(f"c_inv_sqr/{n}", (), True))
        out += [Site(f"v_a/{n}", (), True), Site(f"v_b/{n}", (), True)]
        if _has_rows(layer):
            out += [Site(f"tau_a/{n}", layer.rows, True), Site(f"tau_b/{n}", layer.rows, True)]
        out.extend(Site(f"w_hat/{n}/{leaf}", shape) for leaf, shape in layer.shapes)
    return out


def weights(layers: list[Layer], masks=None, *, tau0: float = 1e-2):
    """Sample the network's weights from the regularised-horseshoe prior; returns a Flax params dict."""
    del masks  # Tiered-FF never prunes
    half = dist.Gamma(0.5, 1.0)
    values = {}
    for layer in layers:
        n = layer.name
        if layer.is_head:
            gamma = jnp.sqrt(numpyro.sample(f"v_a/{n}", half) / numpyro.sample(f"v_b/{n}", half))
            values[n] = {
                leaf: gamma * numpyro.sample(f"w_hat/{n}/{leaf}", dist.Normal(jnp.zeros(s), 1.0).to_event(len(s)))
                for leaf, s in layer.shapes
            }
            continue
        c2 = 1.0 / numpyro.sample(f"c_inv_sqr/{n}", dist.Gamma(2.0, 6.0))
        v2 = tau0**2 * numpyro.sample(f"v_a/{n}", half) / numpyro.sample(f"v_b/{n}", half)
        if _has_rows(layer):
            rows = layer.rows
            tau_a = numpyro.sample(f"tau_a/{n}", dist.Gamma(jnp.full(rows, 0.5), 1.0).to_event(len(rows)))
            tau_b = numpyro.sample(f"tau_b/{n}", dist.Gamma(jnp.full(rows, 0.5), 1.0).to_event(len(rows)))
            s2 = v2 * tau_a / tau_b
        else:
            s2 = v2
        gamma = jnp.sqrt(c2 * s2 / (c2 + s2))
        leaves = {}
        for leaf, shape in layer.shapes:
            w_hat = numpyro.sample(f"w_hat/{n}/{leaf}", dist.Normal(jnp.zeros(shape), 1.0).to_event(len(shape)))
            g = row_broadcast(gamma, shape, layer.rows) if _has_rows(layer) else gamma
            leaves[leaf] = g * w_hat
        values[n] = leaves
    return assemble(layers, values)
