"""Layer-wise decisions over arrays stored per leaf: :func:`join_split`.

A leaf module (it imports only NumPy) so that the BMR step (:mod:`bmrsparse.bmr`), the sparsity curves
(:mod:`bmrsparse.sparsity`) and the methods' prune functions can share it without importing each other or the
methods package.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["join_split"]


def join_split(decide, *groups: Mapping, xp=np) -> dict:
    """Decide about several arrays as one: join each group's arrays into one vector, ``decide``, split back.

    A layer's weights (kernel and bias) are decided together -- a BMR-S&S step shares one :math:`\\zeta` per layer,
    a matched baseline ranks a layer's weights together, a sparsity curve ranks the whole network -- but are stored
    per leaf. Each of ``groups`` is a mapping ``{key: array}`` with the same keys and, per key, the same number of
    elements; ``decide`` receives one flat vector per group (the arrays raveled and concatenated in the first
    group's key order) and returns one vector of that length, which is cut back into ``{key: array}`` in the first
    group's shapes. ``xp``: the array module (``numpy`` or ``jax.numpy``) that joins the vectors.
    """
    if not groups:
        raise ValueError("join_split needs at least one group of arrays")
    keys = list(groups[0])
    flats = [xp.concatenate([xp.ravel(g[k]) for k in keys]) if keys else xp.zeros(0) for g in groups]
    out_flat = decide(*flats)
    out, start = {}, 0
    for k in keys:
        shape = np.shape(groups[0][k])
        n = int(np.prod(shape, dtype=np.int64))
        out[k] = out_flat[start : start + n].reshape(shape)
        start += n
    return out
