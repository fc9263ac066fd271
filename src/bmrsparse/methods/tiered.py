r"""The tiered generative model of eq. (17): regularised-horseshoe prior in the non-centred form.

.. math::
    c_l^{-2} \sim \Gamma(2, 6), \quad a_{il}, b_{il}, \hat a_l, \hat b_l \sim \Gamma(\tfrac12, 1), \quad
    \tau_{il} = \sqrt{a_{il}/b_{il}}, \quad v_l = \tau_0 \sqrt{\hat a_l / \hat b_l}, \\
    \gamma_{il}^2 = \frac{c_l^2 v_l^2 \tau_{il}^2}{c_l^2 + v_l^2 \tau_{il}^2}, \quad
    \hat w_{ijl} \sim \mathcal{N}(0, 1), \quad w_{ijl} = \gamma_{il} \hat w_{ijl}

Each half-Cauchy is the square root of a ratio of two Gamma(1/2, 1) variables (Appendix B, eq. 26). Every layer
below the output layer has rows :math:`i`, each with its own local scale :math:`\tau_{il}`, as in the authors' code
(which treats every Linear, Conv and LayerNorm as a matrix ``[W; b]`` of shape ``[out, in (+1)]``): a dense/conv
layer's rows are its output units (kernel and bias share them); a LayerNorm's rows are its features (scale and
shift of a feature share one); a free parameter such as a position embedding ``[1, T, D]`` or a class token
``[1, 1, D]`` has one row per token (per index of all but its last axis; a vector has one row per entry). The
output layer gets only a half-Cauchy global scale :math:`\gamma_L = \sqrt{\hat a_L / \hat b_L} \sim
\mathcal{C}^+(0, 1)`, without :math:`c` or :math:`\tau_0` (both as in the authors' code). :math:`\tau_0 = 10^{-2}`.

Sites (one vector each): ``c_inv_sqr`` over the layers below the output layer, ``v_a`` and ``v_b``
(:math:`\hat a_l, \hat b_l`) over all layers, ``tau_a`` and ``tau_b`` (:math:`a_{il}, b_{il}`) over the rows of
the layers below the output layer, ``w_hat`` over all weights.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ._layers import Layer, Layout, assemble
from .flat import w_hat_prior
from .guides import Site


def _row_groups(layer: Layer) -> list[tuple[tuple[str, ...], tuple[int, ...], bool]]:
    """``(leaves, rows, leading)`` for each set of a layer's leaves that shares per-row scales.

    ``rows`` is the shape of the scales; ``leading`` says whether they index the leaves' leading axes (free
    parameters: one row per token) or their trailing axes (dense/conv output units, LayerNorm features).
    """
    if layer.is_head:
        return []
    shapes = dict(layer.shapes)
    if layer.kind in ("dense", "conv"):
        return [(tuple(layer.leaves), tuple(shapes["bias"]), False)]
    if layer.kind == "norm":
        return [(tuple(layer.leaves), tuple(shapes["scale"]), False)]
    return [((leaf,), tuple(shape[:-1]) if len(shape) > 1 else tuple(shape), True) for leaf, shape in layer.shapes]


class _Rows:
    """Where each row group's local scales sit in the ``tau_a`` / ``tau_b`` vectors (static offsets)."""

    def __init__(self, layers: list[Layer]):
        self.groups: dict = {}  # (layer name, leaf) -> (start, stop, rows, leading)
        off = 0
        for layer in layers:
            for leaves, rows, leading in _row_groups(layer):
                n = int(np.prod(rows, dtype=np.int64))
                for leaf in leaves:
                    self.groups[(layer.name, leaf)] = (off, off + n, rows, leading)
                off += n
        self.size = off

    def scales(self, flat, layer: str, leaf: str, ndim: int):
        """The block of ``flat`` (last axis) for ``layer``'s ``leaf``, shaped to broadcast against the leaf."""
        a, b, rows, leading = self.groups[(layer, leaf)]
        block = flat[..., a:b]
        pad = (1,) * (ndim - len(rows))
        return block.reshape(flat.shape[:-1] + (rows + pad if leading else pad + rows))


def sites(layers: list[Layer]) -> list[Site]:
    """Latent sites of the tiered model, in order."""
    layout = Layout(layers)
    rows = _Rows(layers)
    n_hidden = sum(not layer.is_head for layer in layers)
    out = [Site("c_inv_sqr", (n_hidden,), True), Site("v_a", (len(layers),), True), Site("v_b", (len(layers),), True)]
    if rows.size:
        out += [Site("tau_a", (rows.size,), True), Site("tau_b", (rows.size,), True)]
    return out + [Site("w_hat", (layout.size,))]


def _half(n):
    return dist.Gamma(jnp.full(n, 0.5), 1.0).to_event(1)


def weights(layers: list[Layer], masks=None, *, tau0: float = 1e-2):
    """Sample the network's weights from the regularised-horseshoe prior; returns a Flax params dict."""
    del masks  # Tiered-FF never prunes
    layout = Layout(layers)
    rows = _Rows(layers)
    n_hidden = sum(not layer.is_head for layer in layers)
    c2_all = 1.0 / numpyro.sample("c_inv_sqr", dist.Gamma(jnp.full(n_hidden, 2.0), 6.0).to_event(1))
    ratio = numpyro.sample("v_a", _half(len(layers))) / numpyro.sample("v_b", _half(len(layers)))
    tau2_all = None
    if rows.size:
        tau2_all = numpyro.sample("tau_a", _half(rows.size)) / numpyro.sample("tau_b", _half(rows.size))
    w_hat = numpyro.sample("w_hat", w_hat_prior(layout.size))
    values, h = {}, 0
    for i, layer in enumerate(layers):
        if not layer.is_head:
            c2, v2 = c2_all[h], tau0**2 * ratio[i]
            h += 1
        leaves = {}
        for leaf, shape in layer.shapes:
            if layer.is_head:
                gamma = jnp.sqrt(ratio[i])
            else:
                s2 = v2 * rows.scales(tau2_all, layer.name, leaf, len(shape))
                gamma = jnp.sqrt(c2 * s2 / (c2 + s2))
            leaves[leaf] = gamma * layout.leaf(w_hat, layer.name, leaf)
        values[layer.name] = leaves
    return assemble(layers, values)


def unit_scales(layers: list[Layer], params: dict, *, tau0: float = 1e-2) -> dict:
    r"""Each dense/conv unit's effective prior scale :math:`(E_q[\gamma_{il}^{-2}])^{-1/2}` under the mean-field
    posterior (constrained guide params of one seed), ``{layer: vector over its units}``, for the layers below the
    output layer.

    :math:`\gamma_{il}^{-2} = c_l^{-2} + \hat b_l\, b_{il} / (\tau_0^2\, \hat a_l\, a_{il})`, and every factor has a
    LogNormal posterior, so the expectation is exact: :math:`E[x^k] = e^{k m + k^2 s^2 / 2}` for
    :math:`x \sim \mathcal{LN}(m, s^2)`. (The authors' code judges its BMR-RHS units by this quantity.)
    """
    import jax.numpy as jnp

    rows = _Rows(layers)

    def moment(site, k, a=None, b=None):
        m, s = params[f"{site}.loc"], params[f"{site}.scale"]
        if a is not None:
            m, s = m[..., a:b], s[..., a:b]
        return jnp.exp(k * m + 0.5 * k * k * s**2)

    out, h = {}, 0
    for i, layer in enumerate(layers):
        if layer.is_head:
            continue
        hidden, h = h, h + 1
        if layer.kind not in ("dense", "conv"):
            continue
        a, b, _, _ = rows.groups[(layer.name, "bias")]
        local = moment("tau_b", 1, a, b) * moment("tau_a", -1, a, b)
        global_ = moment("v_b", 1, i, i + 1) * moment("v_a", -1, i, i + 1) / tau0**2
        out[layer.name] = (moment("c_inv_sqr", 1, hidden, hidden + 1) + global_ * local) ** -0.5
    return out

