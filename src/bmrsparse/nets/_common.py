"""Helpers shared by the networks: layer names that sort in forward order, input checks, dropout."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from bmrsparse import _rng


class Dropout(nn.Module):
    """``flax.linen.Dropout`` with its keep-mask drawn once per step (the same masks, the same numbers).

    The same module name, key (``make_rng("dropout")``), Bernoulli draw and scaling as Flax's; the mask is made by
    :func:`bmrsparse._rng.once`, so that XLA on CPU does not evaluate the draw again in the backward pass.
    """

    rate: float
    deterministic: bool = False

    @nn.compact
    def __call__(self, inputs):
        if self.rate == 0.0 or self.deterministic:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep_prob = 1.0 - self.rate
        rng = self.make_rng("dropout")
        mask = _rng.once(rng, lambda: jax.random.bernoulli(rng, p=keep_prob, shape=inputs.shape))
        return jax.lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))


def indexed_names(prefix: str, n: int) -> list[str]:
    """``prefix_0 .. prefix_{n-1}``, zero-padded when ``n > 10`` so that string sorting keeps the order.

    ``jax.tree_util`` flattens (and rebuilds) dicts in sorted key order, so every parameter name in
    ``bmrsparse.nets`` is chosen such that sorted order is the forward order.
    """
    if n < 0:
        raise ValueError(f"number of layers must be >= 0, got {n}")
    width = len(str(max(n - 1, 0)))
    return [f"{prefix}_{i:0{width}d}" for i in range(n)]


def check_patch_grid(x, patch_size: int, what: str) -> None:
    """Raise ValueError unless ``x`` is [B, H, W, C] with H and W divisible by ``patch_size``."""
    if x.ndim != 4:
        raise ValueError(f"{what} expects images [B, H, W, C], got an array of shape {x.shape}")
    if x.shape[1] % patch_size or x.shape[2] % patch_size:
        raise ValueError(
            f"{what}: image size {tuple(x.shape[1:3])} is not divisible by the patch size {patch_size}"
        )
