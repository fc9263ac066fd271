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


def row_broadcast(scale, leaf_shape, rows):
    """Broadcast per-row scales (shape ``rows``) against a leaf whose trailing dims are ``rows``."""
    extra = len(leaf_shape) - len(rows)
    return scale.reshape((1,) * extra + tuple(rows))
