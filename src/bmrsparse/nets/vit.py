"""Vision Transformer of the paper (Appendix A): ViT-Tiny variant with 4x4 patches, six pre-norm blocks,
eight heads, embedding dimension 256 and MLP dimension 512.

Reference: Dosovitskiy et al. (2021), An Image is Worth 16x16 Words, https://arxiv.org/abs/2010.11929
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from bmrsparse.nets._common import Dropout, check_patch_grid, indexed_names
from bmrsparse.nets._registry import Network


class _TokenEmbedding(nn.Module):
    """Adds a learned position embedding; with ``class_token`` first prepends a learned class token (the authors').

    Params ``cls_token`` [1, 1, D] (only with ``class_token``) and ``embedding`` [1, S (+ 1), D] (one position per
    token); no kernel/bias: not a dense layer. In the authors' code both are rows of one parameter matrix.
    """

    class_token: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d = x.shape[-1]
        if self.class_token:
            cls_token = self.param("cls_token", nn.initializers.normal(stddev=0.02), (1, 1, d))
            x = jnp.concatenate([jnp.broadcast_to(cls_token, (x.shape[0], 1, d)).astype(x.dtype), x], axis=1)
        embedding = self.param("embedding", nn.initializers.normal(stddev=0.02), (1,) + x.shape[1:])
        return x + embedding


class _SelfAttention(nn.Module):
    """Pre-norm residual multi-head self-attention from plain Dense layers.

    ``norm`` (LayerNorm), ``proj_in`` (Dense to 3 D: queries, keys, values of all heads), scaled
    dot-product attention per head, ``proj_out`` (Dense D -> D).
    """

    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, s, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"embedding dimension {d} is not divisible by num_heads={self.num_heads}")
        head_dim = d // self.num_heads
        y = nn.LayerNorm(name="norm")(x)
        qkv = nn.Dense(3 * d, name="proj_in")(y).reshape((b, s, 3, self.num_heads, head_dim))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, S, H, Dh]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(head_dim).astype(x.dtype)
        weights = jax.nn.softmax(logits, axis=-1)
        y = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape((b, s, d))
        return x + nn.Dense(d, name="proj_out")(y)


class _FeedForward(nn.Module):
    """Pre-norm residual MLP: ``norm``, ``proj_in`` + gelu, dropout, ``proj_out``."""

    mlp_dim: int
    dropout_rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = nn.LayerNorm(name="norm")(x)
        y = nn.gelu(nn.Dense(self.mlp_dim, name="proj_in")(y))
        y = Dropout(self.dropout_rate, deterministic=not train)(y)
        return x + nn.Dense(x.shape[-1], name="proj_out")(y)


class _EncoderBlock(nn.Module):
    """Self-attention branch ``attention`` followed by MLP branch ``mlp``."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = _SelfAttention(self.num_heads, name="attention")(x)
        return _FeedForward(self.mlp_dim, self.dropout_rate, name="mlp")(x, train=train)


class ViT(nn.Module):
    """Patch embedding ``embed`` (Conv, kernel = stride = ``patch_size``, ``embed_dim`` features), learned
    class token and position embedding ``embed_pos``, ``num_blocks`` pre-norm encoder blocks ``encoder_k``,
    final LayerNorm ``encoder_norm``, Dense ``head`` on the class token.

    ``pool="token"`` (default), as in the authors' code (bmr4pml, after DINO's ViT): a learned class token is
    prepended to the patch tokens and the classifier reads its final representation. ``pool="mean"``: no class
    token, the classifier reads the mean over all tokens (global average pooling). Under the flat prior the
    LayerNorm scales start near 0.1 * c * U(-r, r), so at the start the class token's final representation barely
    depends on the input: a shrunken ViT (width 16, one block) with the class token learns far more slowly than
    with mean pooling (measured: docs/design-notes.md).
    Dropout (``dropout_rate``, rng ``'dropout'``, only with ``train=True``) acts on the input of the second
    Dense layer of every MLP branch and on the input of ``head``.
    """

    num_classes: int = 10
    patch_size: int = 4
    embed_dim: int = 256
    num_heads: int = 8
    mlp_dim: int = 512
    num_blocks: int = 6
    dropout_rate: float = 0.0
    pool: str = "token"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        check_patch_grid(x, self.patch_size, "ViT")
        if self.pool not in ("token", "mean"):
            raise ValueError(f"ViT pool must be 'token' or 'mean', got {self.pool!r}")
        p = (self.patch_size, self.patch_size)
        x = nn.Conv(self.embed_dim, p, strides=p, padding="VALID", name="embed")(x)
        x = x.reshape((x.shape[0], -1, x.shape[-1]))  # [B, S, D]
        x = _TokenEmbedding(self.pool == "token", name="embed_pos")(x)  # [B, 1 + S, D]: class token first
        for name in indexed_names("encoder", self.num_blocks):
            x = _EncoderBlock(self.num_heads, self.mlp_dim, self.dropout_rate, name=name)(x, train=train)
        x = nn.LayerNorm(name="encoder_norm")(x)
        x = x[:, 0] if self.pool == "token" else jnp.mean(x, axis=1)
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x)


NETWORK = Network(
    name="vit",
    label="ViT",
    module=ViT,
    input_size=32,
    tiny={"embed_dim": 16, "num_heads": 2, "mlp_dim": 16, "num_blocks": 1},
    mem_mb=8000,
    ms_per_step={"gpu": 15, "cpu": 500},
    order=3,
    description="Vision Transformer",
)
