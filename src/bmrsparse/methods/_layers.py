"""Layer bookkeeping shared by the priors: which parameters form a layer, which axis holds its rows.

A *layer* is a Flax module's parameter dict whose values are arrays: ``{"kernel", "bias"}`` for dense and conv
layers (the matrix :math:`[W; b]` of eq. 11), ``{"scale", "bias"}`` for LayerNorm, or a single free parameter
(e.g. a position embedding). A dense/conv layer's *rows* (index :math:`i` in :math:`w_{ijl}`) are its output units:
the bias shape, which equals the kernel's trailing dims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

HEAD = "head"


@dataclass(frozen=True)
class Layer:
    """One layer: its path name, its leaves' shapes and whether it is a dense/conv layer with rows."""

    name: str  # e.g. "block_0/mlp_0"
    path: tuple  # keys in the params dict
    shapes: tuple  # ((leaf, shape), ...) in the params' order
    kind: str  # "dense", "conv", "norm" or "other"

    @property
    def leaves(self):
        return [k for k, _ in self.shapes]

    @property
    def rows(self):
        """Shape of the per-row scales (the bias shape) for dense/conv layers, else None."""
        if self.kind in ("dense", "conv"):
            return dict(self.shapes)["bias"]
        return None

    @property
    def is_head(self) -> bool:
        return self.path[-1] == HEAD

    @property
    def size(self) -> int:
        return int(sum(np.prod(s) for _, s in self.shapes))


def _kind(leaves: Mapping) -> str:
    if "kernel" in leaves and "bias" in leaves:
        return "conv" if len(leaves["kernel"].shape) == 4 else "dense"
    if "scale" in leaves:
        return "norm"
    return "other"


def find_layers(params) -> list[Layer]:
    """Layers of a (possibly abstract) Flax params tree, in the params' (= forward) order."""
    out: list[Layer] = []

    def walk(node, path):
        if all(hasattr(v, "shape") for v in node.values()):
            shapes = tuple((k, tuple(v.shape)) for k, v in node.items())
            out.append(Layer("/".join(path), tuple(path), shapes, _kind(node)))
            return
        for k, v in node.items():
            if hasattr(v, "shape"):
                out.append(Layer("/".join(path + (k,)), tuple(path + (k,)), (("value", tuple(v.shape)),), "other"))
            else:
                walk(v, path + (k,))

    walk(params, ())
    heads = [l for l in out if l.is_head]
    if len(heads) != 1:
        raise ValueError(f"the network must have exactly one output Dense named {HEAD!r}; found {len(heads)}")
    return out


def assemble(layers: list[Layer], values: Mapping) -> dict:
    """Nested Flax params dict from ``{layer_name: {leaf: array}}``."""
    params: dict = {}
    for layer in layers:
        if layer.shapes[0][0] == "value" and len(layer.shapes) == 1:
            node = params
            for k in layer.path[:-1]:
                node = node.setdefault(k, {})
            node[layer.path[-1]] = values[layer.name]["value"]
            continue
        node = params
        for k in layer.path:
            node = node.setdefault(k, {})
        node.update(values[layer.name])
    return params


class Layout:
    """Where each layer's leaves sit in one flat vector of all the network's weights (static offsets).

    All :math:`\\hat w` of a network form one latent vector (one NumPyro site, one guide location and scale), so the
    compiled program has a handful of large arrays instead of hundreds of small ones: faster to compile and to
    update. Rows (output units) of the dense/conv layers below the output layer likewise form one vector.
    """

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)
        self.slices: dict = {}
        off = 0
        for layer in self.layers:
            for leaf, shape in layer.shapes:
                n = int(np.prod(shape, dtype=np.int64))
                self.slices[(layer.name, leaf)] = (off, off + n, tuple(shape))
                off += n
        self.size = off
        self.row_slices: dict = {}
        off = 0
        for layer in self.layers:
            if layer.rows is not None and not layer.is_head:
                n = int(np.prod(layer.rows, dtype=np.int64))
                self.row_slices[layer.name] = (off, off + n, tuple(layer.rows))
                off += n
        self.num_rows = off
        self._memo = None  # (array, its pieces) of the last split, see leaf()

    def split(self, flat) -> dict:
        """Every block of ``flat`` (last axis) in its leaf's shape, ``{(layer, leaf): array}``, by one split.

        One ``split`` instead of a slice per leaf: the gradient of a split is one concatenation, while the gradient
        of many slices is a sum of zero-padded copies of the whole vector, which XLA evaluates as one loop reading
        every block for every element.
        """
        bounds = [b for _, b, _ in self.slices.values()][:-1]
        if isinstance(flat, np.ndarray):
            pieces = np.split(flat, bounds, axis=-1)
        else:
            import jax.numpy as jnp  # noqa: PLC0415 (this module is imported without JAX by the registry)

            pieces = jnp.split(flat, bounds, axis=-1)
        return {k: p.reshape(flat.shape[:-1] + shape) for (k, (_, _, shape)), p in zip(self.slices.items(), pieces)}

    def leaf(self, flat, layer: str, leaf: str):
        """The block of ``flat`` (last axis) that holds ``layer``'s ``leaf``, in the leaf's shape.

        The first call on an array splits it whole (:meth:`split`); later calls on the same array reuse the
        pieces, so taking every leaf of ``w_hat`` costs one split op.
        """
        if self._memo is None or self._memo[0] is not flat:
            self._memo = (flat, self.split(flat))
        return self._memo[1][(layer, leaf)]

    def rows(self, flat, layer: str):
        """The block of a per-row vector that holds ``layer``'s rows, in the rows' shape."""
        a, b, shape = self.row_slices[layer]
        return flat[..., a:b].reshape(flat.shape[:-1] + shape)
