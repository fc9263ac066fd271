r"""Inference methods: a registry of declarations, and the NumPyro model and guide of a method.

Every method is one module of this package (or of another installed package, through the entry-point group
``bmrsparse.methods``) that declares ``METHOD = Method(...)``: its name, label and colour, prior and guide,
default learning rate, where it starts, whether it runs one workflow job per epoch, the other method's state it
reads, and its prune function. See :mod:`bmrsparse.methods._registry`. The paper's four (section 3.1):

=============  ==========================  ===========================  ==============================
name           prior                        posterior                    notes
=============  ==========================  ===========================  ==============================
``flat_map``   flat, eq. (15)               point estimate (MAP)         dropout 0.2 on dense layers
``flat_ff``    flat, eq. (15)               fully factorised, eq. (16)
``tiered_ff``  regularised horseshoe (17)   fully factorised, eq. (18)
``bmr_ss``     flat + spike-and-slab (13)   fully factorised, eq. (16)   BMR prune before each epoch
=============  ==========================  ===========================  ==============================

:func:`build` turns a :class:`Method`, a Flax network and the data size into a NumPyro ``(model, guide, sites)``
triple. The model is a plain function of a minibatch; ``y=None`` makes it a predictive. The whole evidence bound
is scaled by :math:`1/N` (per-datum ELBO).
"""

from __future__ import annotations

import importlib

from ._layers import HEAD, Layer, find_layers
from ._registry import (
    ENTRY_POINT_GROUP,
    METHODS,
    Method,
    MethodAttribute,
    PruneContext,
    WARMUP_INHERITS,
    WARMUP_METHOD,
    discover,
    fill_schema,
    get_method,
    register,
    unregister,
    warmup_settings,
    warmup_tag,
)

__all__ = [
    "Method",
    "METHODS",
    "PruneContext",
    "ENTRY_POINT_GROUP",
    "register",
    "unregister",
    "get_method",
    "fill_schema",
    "MethodAttribute",
    "WARMUP_METHOD",
    "WARMUP_INHERITS",
    "warmup_settings",
    "warmup_tag",
    "build",
    "Built",
    "layer_posteriors",
    "weights_from_latents",
    "all_kept",
    "find_layers",
    "HEAD",
    "Layer",
]

# The model code (and JAX) is imported on first use, so reading the registry (the workflow's planning) stays fast.
_MODEL = {"build", "Built", "layer_posteriors", "weights_from_latents", "all_kept"}
#: Modules of this package that are not methods (priors, guides): discovery does not import them.
_HELPERS = {"flat", "guides", "tiered", "units"}


def __getattr__(name):
    if name in _MODEL:
        return getattr(importlib.import_module("._model", __name__), name)
    if name in _HELPERS:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


discover(__path__, __name__, skip=_HELPERS)
