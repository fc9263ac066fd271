"""Networks: a registry of declarations (the paper's four of Appendix A and any added), Flax linen modules on
channel-last images [B, H, W, C].

Every network is declared once as ``NETWORK = Network(...)`` in its module of this package or of another package
named by an entry point of the group ``bmrsparse.nets`` (:mod:`bmrsparse.nets._registry`).

Every module is called as ``net.apply(variables, x, train=False, rngs={'dropout': key})``; dropout is active
only with ``train=True`` and ``dropout_rate > 0`` (the Mixer never uses dropout). Conventions the Bayesian
code relies on:

- every Dense / Conv holds one ``{"kernel", "bias"}`` dict with ``bias.shape == kernel.shape[-1:]``
  (the last kernel axis indexes output units); LayerNorms hold ``{"scale", "bias"}``; the ViT's position
  embedding holds ``{"embedding"}``;
- the final classifier is a Dense named ``"head"``;
- names are chosen so that sorted key order equals forward order at every level of the params tree, so the
  order survives ``jax.tree_util`` round trips (which rebuild dicts in sorted key order).

References:
  [1] Markovic, Friston, Kiebel (2023). Bayesian sparsification for deep neural networks with Bayesian model
      reduction. Appendix A.
"""

import math
from typing import Any, Iterator, Mapping

import flax.linen as nn

from bmrsparse.data import DATASETS, NUM_CLASSES, get_dataset
from bmrsparse.nets._registry import ENTRY_POINT_GROUP, NETWORKS, Network, get_network, register, unregister
from bmrsparse.nets.lenet import LeNet
from bmrsparse.nets.mixer import MlpMixer
from bmrsparse.nets.mlp import MLP
from bmrsparse.nets.vit import ViT

__all__ = [
    "DATASETS", "ENTRY_POINT_GROUP", "NETWORKS", "NUM_CLASSES", "LeNet", "MLP", "MlpMixer", "Network", "ViT",
    "count_params", "get_network", "input_shape", "iter_layers", "make_net", "register", "unregister",
]


def _check(arch: str, dataset: str):
    return get_network(arch), get_dataset(dataset)


def input_shape(arch: str, dataset: str) -> tuple[int, int, int]:
    """(H, W, C) of one input image: the dataset's images, zero-padded to the network's ``input_size`` when smaller
    (FashionMNIST's 28x28 become 32x32 for every network but the MLP, which takes them as they are)."""
    net, ds = _check(arch, dataset)
    h, w, c = ds.shape
    size = net.input_size
    if size is None or (h >= size and w >= size):
        return (h, w, c)
    if (size - h) % 2 or (size - w) % 2:
        raise ValueError(f"{ds.label}'s {h}x{w} images cannot be padded evenly to {net.label}'s {size}x{size}")
    return (size, size, c)


def make_net(arch: str, dataset: str, *, dropout_rate: float = 0.0, **overrides: Any) -> nn.Module:
    """Build the registered network ``arch`` for ``dataset``.

    Args:
      arch: a registered network (:data:`NETWORKS`).
      dataset: a registered dataset; sets ``num_classes`` and the network's declared sizes for it
        (:attr:`Network.sizes`, e.g. LeNet-5's widened CIFAR variant).
      dropout_rate: dropout probability used when called with ``train=True``; accepted and ignored by a module
        without a ``dropout_rate`` field (the Mixer: the paper uses no dropout there).
      **overrides: module fields to change, e.g. ``width``/``depth`` (MLP), ``features``/``hidden`` (LeNet-5),
        ``hidden_dim``/``tokens_mlp_dim``/``channels_mlp_dim``/``num_blocks``/``patch_size`` (MLP-Mixer),
        ``embed_dim``/``num_heads``/``mlp_dim``/``num_blocks``/``patch_size``/``pool`` (ViT).

    Returns:
      An unbound ``flax.linen.Module``.
    """
    net, ds = _check(arch, dataset)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must lie in [0, 1), got {dropout_rate}")
    module = net.module
    fields = set(module.__dataclass_fields__) - {"parent", "name", "dropout_rate"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for arch {arch!r}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {"num_classes": ds.num_classes}
    kwargs.update(net.sizes.get(dataset, {}))
    if "dropout_rate" in module.__dataclass_fields__:
        kwargs["dropout_rate"] = float(dropout_rate)
    kwargs.update(overrides)
    if "features" in kwargs:
        kwargs["features"] = tuple(kwargs["features"])
    return module(**kwargs)


def count_params(params: Any) -> int:
    """Number of scalars in a params pytree (arrays or ``jax.ShapeDtypeStruct`` leaves)."""
    import jax

    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def iter_layers(params: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Yield ``(path, kind, leaf_dict)`` for every module holding parameters, in forward order.

    ``path`` joins names with "/" (e.g. ``"encoder_0/attention/proj_in"``); ``kind`` is ``"dense"`` (2-D
    kernel), ``"conv"`` (kernel of higher rank), ``"norm"`` (LayerNorm) or ``"embedding"``. Accepts the
    ``params`` collection or the full variables dict ``{"params": ...}``.
    """
    if set(params) == {"params"}:
        params = params["params"]
    yield from _walk(params, ())


def _walk(tree: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for name in sorted(tree):  # sorted order is forward order by construction of the names
        node = tree[name]
        path = prefix + (name,)
        if isinstance(node, Mapping) and not any(isinstance(v, Mapping) for v in node.values()):
            if "kernel" in node:
                kind = "dense" if len(node["kernel"].shape) == 2 else "conv"
            elif "scale" in node:
                kind = "norm"
            else:
                kind = "embedding"
            yield "/".join(path), kind, node
        elif isinstance(node, Mapping):
            yield from _walk(node, path)
        else:
            raise ValueError(f"parameter {'/'.join(path)!r} is not inside a layer dict")


NETWORKS.discover(__path__, __name__)
