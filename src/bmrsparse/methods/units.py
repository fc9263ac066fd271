r"""The flat model of eq. (15) with one scale per unit and per input: the model of BMR over units (beyond the paper).

.. math::
    c_l^{-2} \sim \Gamma(2, 2), \quad \nu_{il} \sim \mathcal{N}(0, 1), \quad \xi_j \sim \mathcal{N}(0, 1), \quad
    \hat w_{ijl} \sim \mathcal{N}(0, 1), \quad
    w_{ijl} = \gamma_0\, c_l\, \lambda_{ijl}\, \nu_{il}\, \xi_j^{[l = 1]}\, \hat w_{ijl}

Every dense or convolutional layer below the output layer has one scale :math:`\nu_{il}` per output unit :math:`i`
(an MLP neuron or a convolution's output channel): it multiplies the unit's whole kernel column (filter) and its
bias. The first such layer also has one scale :math:`\xi_j` per input :math:`j` of its kernel (an input pixel of the
MLP, an input channel of a convolution), multiplying the kernel's row :math:`j`. Everything else is the flat model of
:mod:`~bmrsparse.methods.flat` (:math:`\gamma_0 = 0.1` below the output layer, the per-layer :math:`c_l`, the keep-mask
:math:`\lambda`); the mean-field posterior (eq. 16) covers the scales too: :math:`q(\nu_{il}) =
\mathcal{N}(\mu, \sigma^2)`.

Why a Gaussian scale. The scale makes the prior of a weight a scale mixture of normals, :math:`w \mid \nu \sim
\mathcal{N}(0, \gamma_0^2 c_l^2 \nu^2)`, the family of the group priors of Bayesian compression (Louizos, Ullrich,
Welling 2017: normal-Jeffreys and horseshoe scales shared by a unit's weights). With :math:`\nu \sim \mathcal{N}(0, 1)`
the marginal of :math:`w` is a normal-product density: unbounded at zero and with exponential tails, so it shrinks,
while :math:`E[\nu^2] = 1` keeps the flat prior's variance. Its point for Bayesian model reduction: removing a unit is
the reduced prior :math:`\delta(\nu_{il})` on one Gaussian scalar, whose :math:`\Delta F` is eq. (19) in closed form, so
the paper's spike-and-slab fixed point (eqs. 20-23) applies with the unit as its element, as BMRS (Wright, Igel, Selvan
2024) applies BMR to one multiplicative variable per neuron or filter. The log-uniform prior of structured Bayesian
pruning (Neklyudov et al. 2017) and of BMRS is improper and needs a truncated reduced prior with a chosen bound;
a half-Cauchy scale (group horseshoe) has no closed-form :math:`\Delta F` to a spike under a LogNormal posterior.

Sites: ``c_inv_sqr`` ``[L]``, ``nu`` over the units of the layers below the output layer (forward order, a layer's
units in its bias order), ``xi`` over the first such layer's inputs, ``w_hat`` ``[P]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, Layout, assemble
from .flat import PRUNED_SCALE, w_hat_prior
from .guides import Site

__all__ = ["UnitLayout", "sites", "weights", "unit_posteriors"]


class UnitLayout:
    """Where each layer's unit scales sit in ``nu`` and which layer's inputs ``xi`` scales (static offsets).

    ``units``: ``{layer: (start, stop)}`` for every dense/conv layer below the output layer; ``first``: the name of
    the first of them (its kernel's inputs are the ``xi`` groups); ``num_units`` and ``num_inputs``: the sizes of
    ``nu`` and ``xi``.
    """

    def __init__(self, layers: list[Layer]):
        self.units: dict = {}
        off = 0
        for layer in layers:
            if layer.kind in ("dense", "conv") and not layer.is_head:
                n = int(np.prod(layer.rows, dtype=np.int64))
                self.units[layer.name] = (off, off + n)
                off += n
        if not self.units:
            raise ValueError("the units model needs a dense or convolutional layer below the output layer")
        self.num_units = off
        self.first = next(iter(self.units))
        kernel = dict(next(l for l in layers if l.name == self.first).shapes)["kernel"]
        self.num_inputs = int(kernel[-2])


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the units model, in order."""
    units = UnitLayout(layers)
    return [Site("c_inv_sqr", (len(layers),), positive=True), Site("nu", (units.num_units,)),
            Site("xi", (units.num_inputs,)), Site("w_hat", (Layout(layers).size,))]


def _scale_prior(n: int):
    return dist.Normal(jnp.zeros(n), 1.0, validate_args=False).to_event(1)


def weights(layers: list[Layer], masks=None, *, gamma0: float = 0.1):
    """Sample the network's weights from the units model; returns a Flax params dict."""
    layout, units = Layout(layers), UnitLayout(layers)
    c_inv_sqr = numpyro.sample("c_inv_sqr", dist.Gamma(jnp.full(len(layers), 2.0), 2.0).to_event(1))
    factor = jnp.asarray([1.0 if layer.is_head else gamma0 for layer in layers])
    c = jax.lax.rsqrt(c_inv_sqr) * factor
    nu = numpyro.sample("nu", _scale_prior(units.num_units))
    xi = numpyro.sample("xi", _scale_prior(units.num_inputs))
    w_hat = numpyro.sample("w_hat", w_hat_prior(layout.size))
    values = {}
    for i, layer in enumerate(layers):
        leaves = {}
        span = units.units.get(layer.name)
        for leaf, shape in layer.shapes:
            w = c[i] * layout.leaf(w_hat, layer.name, leaf)
            if span is not None:
                w = w * nu[span[0]:span[1]].reshape(layer.rows)  # kernel [..., out] and bias [out]
                if layer.name == units.first and leaf == "kernel":
                    w = w * xi[:, None]  # the kernel's inputs: its second-to-last axis
            if masks is not None:
                w = w * jnp.where(masks[layer.name][leaf], 1.0, PRUNED_SCALE)
            leaves[leaf] = w
        values[layer.name] = leaves
    return assemble(layers, values)


def unit_posteriors(layers: list[Layer], params: dict) -> dict:
    """``{layer: (mu, sigma)}`` of :math:`q(\\nu)` per pruned layer (vectors over its units), and
    ``{"inputs": (mu, sigma)}`` of :math:`q(\\xi)` under the key ``(first layer, "inputs")``."""
    units = UnitLayout(layers)
    mu, sigma = params["nu.loc"], params["nu.scale"]
    out = {name: (mu[a:b], sigma[a:b]) for name, (a, b) in units.units.items()}
    out[(units.first, "inputs")] = (params["xi.loc"], params["xi.scale"])
    return out
