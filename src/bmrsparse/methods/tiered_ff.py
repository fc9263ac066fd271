"""Tiered-FF: fully factorised posterior (eq. 18) of the regularised-horseshoe model (eq. 17), from scratch.

Its compact network (beyond the paper, :mod:`bmrsparse.compact`): the horseshoe's per-unit scales switch units off
while it trains, so Tiered-FF is also a structured method without pruning. :func:`compact_masks` cuts a unit when
its effective prior scale :math:`(E_q[\\gamma_{il}^{-2}])^{-1/2}` (:func:`bmrsparse.methods.tiered.unit_scales`) is
below :data:`UNIT_CUT` (1/20) of the largest in its layer. The rule rests on what the scales look like after
training: they fall into two groups about a factor 10-30 apart (quick profile, MLP: 0.7e-3 to 5e-3 against 0.03 to
0.36); any fraction between 1/50 and 1/5 cuts nearly the same units (docs/structured-bmr.md).
"""

from ._registry import Method

#: A unit is cut when its effective prior scale is below this fraction of the largest in its layer.
UNIT_CUT = 0.05


def compact_masks(ctx, params, *, cut: float = UNIT_CUT):
    """Keep-masks ``{layer: {leaf: bool}}`` of the units Tiered-FF's per-unit scales keep (see the module
    docstring): a cut unit's kernel column and bias are ``False``; every other layer is whole."""
    import jax.numpy as jnp

    from .tiered import unit_scales

    scales = unit_scales(ctx.built.layers, params, tau0=float(ctx.settings["tau0"]))
    masks = {}
    for layer in ctx.built.layers:
        shapes = dict(layer.shapes)
        if layer.name in scales:
            keep = scales[layer.name] >= cut * jnp.max(scales[layer.name])
            masks[layer.name] = {"kernel": jnp.broadcast_to(keep, shapes["kernel"]), "bias": keep}
        else:
            masks[layer.name] = {leaf: jnp.ones(shape, bool) for leaf, shape in layer.shapes}
    return masks


METHOD = Method(
    name="tiered_ff",
    label="Tiered-FF",
    color="#ff7f0e",
    prior="tiered",
    guide="mean_field",
    learning_rate=5e-3,  # the authors' code's default for this method
    start="scratch",
    structured=True,
    compact_masks=compact_masks,
    settings=("tau0",),
    order=30,
    description="fully factorised posterior of the regularised-horseshoe model",
)
