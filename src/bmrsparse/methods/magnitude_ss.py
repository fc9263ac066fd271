r"""Magnitude pruning at BMR-S&S's per-layer sparsity: a baseline for BMR's choice of *which* weights to remove.

Starts from the shared Flat-FF warm-up like BMR-S&S. Before each of its epochs it prunes, in every layer but the
output layer, as many weights as BMR-S&S has pruned in that layer at the same epoch (read from BMR-S&S's state of
that epoch), choosing the kept weights with the smallest :math:`|E_q[w]|`; then it trains the epoch with the
reduced prior exactly as BMR-S&S does (same keep-masks mechanism, schedule and learning rate). Masks accumulate.

Under the flat model every weight of a layer :math:`l` (kernel and bias) is :math:`w = \gamma_0 c_l \hat w` with
one scale :math:`c_l` per layer, independent of :math:`\hat w` under the mean-field posterior, so
:math:`|E_q[w]| = \gamma_0 E_q[c_l]\, |\mu|` and ranking a layer by :math:`|E_q[w]|` is ranking it by the
posterior mean :math:`|\mu|` of :math:`\hat w`.
"""

from __future__ import annotations

from .._layerwise import join_split
from ._method import Method

__all__ = ["METHOD", "matched_prune", "magnitude"]


def magnitude(mu, sigma):
    """Score of a weight (lower = pruned first): :math:`|\\mu|`, i.e. :math:`|E_q[w]|` within a layer."""
    import jax.numpy as jnp

    return jnp.abs(mu)


def matched_prune(score):
    """A prune function (see :attr:`Method.prune`) that removes, per layer, as many weights as the reference
    masks have removed in that layer, lowest ``score(mu, sigma)`` first among the weights still kept.

    The weights of a layer's leaves (kernel and bias) are ranked together, as BMR-S&S decides per layer. Ties
    are broken by position (stable sort), so the count is exact. The output layer is never pruned. If the method
    has already pruned more than the reference in a layer, it prunes nothing more there (masks accumulate).
    """

    def prune(ctx, params, masks, reference):
        import jax.numpy as jnp

        from . import layer_posteriors

        posterior = layer_posteriors(ctx.built, params)
        new = {}
        for layer, leaves in posterior.items():
            if layer == ctx.head:
                new[layer] = dict(masks[layer])
                continue
            target = sum(jnp.sum(~jnp.asarray(reference[layer][k])) for k in leaves)

            def decide(kept, s, target=target):
                s = jnp.where(kept, s, -jnp.inf)  # already pruned: first in line, they count towards the target
                order = jnp.argsort(s, stable=True)
                rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
                return kept & (rank >= target)

            scores = {k: score(*pair) for k, pair in leaves.items()}
            new[layer] = join_split(decide, {k: masks[layer][k] for k in leaves}, scores, xp=jnp)
        return new

    return prune


METHOD = Method(
    name="magnitude_ss",
    label="Magnitude (BMR sparsity)",
    color="#9467bd",
    prior="flat",
    guide="mean_field",
    learning_rate=1e-2,  # BMR-S&S's
    start="warmup",
    per_epoch=True,
    prune=matched_prune(magnitude),
    reference="bmr_ss",
    order=50,
    description="prunes BMR-S&S's per-layer counts by smallest |E[w]|, then trains as BMR-S&S",
)
