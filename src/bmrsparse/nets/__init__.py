"""Networks of the paper (Appendix A) as Flax linen modules on channel-last images [B, H, W, C].

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

from bmrsparse.nets.lenet import LeNet
from bmrsparse.nets.mixer import MlpMixer
from bmrsparse.nets.mlp import MLP
from bmrsparse.nets.vit import ViT

__all__ = [
    "ARCHS", "DATASETS", "NUM_CLASSES", "LeNet", "MLP", "MlpMixer", "ViT",
    "count_params", "input_shape", "iter_layers", "make_net",
]

ARCHS = ("mlp", "lenet", "mixer", "vit")
DATASETS = ("fashion_mnist", "cifar10", "cifar100")
NUM_CLASSES = {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100}

_MODULES = {"mlp": MLP, "lenet": LeNet, "mixer": MlpMixer, "vit": ViT}

# LeNet sizes of Appendix A: the CIFAR variants are widened.
_LENET_SIZES = {
    "fashion_mnist": {"features": (6, 16, 120), "hidden": 84},
    "cifar10": {"features": (18, 48, 360), "hidden": 256},
    "cifar100": {"features": (18, 48, 360), "hidden": 256},
}


def _check(arch: str, dataset: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")


def input_shape(arch: str, dataset: str) -> tuple[int, int, int]:
    """(H, W, C) of one input image: FashionMNIST is zero-padded to 32x32 for every arch but the MLP."""
    _check(arch, dataset)
    if dataset == "fashion_mnist":
        return (28, 28, 1) if arch == "mlp" else (32, 32, 1)
    return (32, 32, 3)


def make_net(arch: str, dataset: str, *, dropout_rate: float = 0.0, **overrides: Any) -> nn.Module:
    """Build the paper's network ``arch`` for ``dataset``.

    Args:
      arch: one of ``ARCHS``.
      dataset: one of ``DATASETS``; sets ``num_classes`` and, for LeNet, the layer sizes.
      dropout_rate: dropout probability used when called with ``train=True``. Accepted and ignored for the
        Mixer (the paper uses no dropout there).
      **overrides: module fields to change, e.g. ``width``/``depth`` (mlp), ``features``/``hidden`` (lenet),
        ``hidden_dim``/``tokens_mlp_dim``/``channels_mlp_dim``/``num_blocks``/``patch_size`` (mixer),
        ``embed_dim``/``num_heads``/``mlp_dim``/``num_blocks``/``patch_size``/``pool`` (vit).

    Returns:
      An unbound ``flax.linen.Module``.
    """
    _check(arch, dataset)
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must lie in [0, 1), got {dropout_rate}")
    module = _MODULES[arch]
    fields = set(module.__dataclass_fields__) - {"parent", "name", "dropout_rate"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for arch {arch!r}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {"num_classes": NUM_CLASSES[dataset]}
    if arch == "lenet":
        kwargs.update(_LENET_SIZES[dataset])
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
