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

Sites (one vector each): ``c_inv_sqr`` over the layers below the output layer, ``v_a`` and ``v_b``
(:math:`\hat a_l, \hat b_l`) over all layers, ``tau_a`` and ``tau_b`` (:math:`a_{il}, b_{il}`) over the rows of the
dense/conv layers below the output layer, ``w_hat`` over all weights.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, Layout, assemble
from .guides import Site


def _has_rows(layer: Layer) -> bool:
    return layer.rows is not None and not layer.is_head


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the tiered model, in order."""
    layout = Layout(layers)
    n_hidden = sum(not layer.is_head for layer in layers)
    out = [Site("c_inv_sqr", (n_hidden,), True), Site("v_a", (len(layers),), True), Site("v_b", (len(layers),), True)]
    if layout.num_rows:
        out += [Site("tau_a", (layout.num_rows,), True), Site("tau_b", (layout.num_rows,), True)]
    return out + [Site("w_hat", (layout.size,))]


def _half(n):
    return dist.Gamma(jnp.full(n, 0.5), 1.0).to_event(1)


def weights(layers: list[Layer], masks=None, *, tau0: float = 1e-2):
    """Sample the network's weights from the regularised-horseshoe prior; returns a Flax params dict."""
    del masks  # Tiered-FF never prunes
    layout = Layout(layers)
    n_hidden = sum(not layer.is_head for layer in layers)
    c2_all = 1.0 / numpyro.sample("c_inv_sqr", dist.Gamma(jnp.full(n_hidden, 2.0), 6.0).to_event(1))
    ratio = numpyro.sample("v_a", _half(len(layers))) / numpyro.sample("v_b", _half(len(layers)))
    tau2_all = None
    if layout.num_rows:
        tau2_all = numpyro.sample("tau_a", _half(layout.num_rows)) / numpyro.sample("tau_b", _half(layout.num_rows))
    w_hat = numpyro.sample("w_hat", dist.Normal(jnp.zeros(layout.size), 1.0).to_event(1))
    values, h = {}, 0
    for i, layer in enumerate(layers):
        if layer.is_head:
            gamma = jnp.sqrt(ratio[i])
        else:
            c2, v2 = c2_all[h], tau0**2 * ratio[i]
            h += 1
            s2 = v2 * layout.rows(tau2_all, layer.name) if _has_rows(layer) else v2
            gamma = jnp.sqrt(c2 * s2 / (c2 + s2))
        leaves = {}
        for leaf, shape in layer.shapes:
            g = gamma
            if _has_rows(layer):
                g = gamma.reshape((1,) * (len(shape) - len(layer.rows)) + tuple(layer.rows))
            leaves[leaf] = g * layout.leaf(w_hat, layer.name, leaf)
        values[layer.name] = leaves
    return assemble(layers, values)
