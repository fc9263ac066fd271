"""MLP-Mixer of the paper (Appendix A): 4x4 patches, C=256, S=64, D_S=D_C=512, six mixer blocks.

Reference: Tolstikhin et al. (2021), MLP-Mixer: An all-MLP Architecture for Vision, https://arxiv.org/abs/2105.01601
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from bmrsparse.nets._common import check_patch_grid, indexed_names
from bmrsparse.nets._registry import Network


class _MixingMlp(nn.Module):
    """Pre-norm residual MLP branch: ``norm`` (LayerNorm over channels), ``proj_in`` + gelu, ``proj_out``.

    With ``over_tokens=True`` the two Dense layers act along the token axis (token mixing).
    """

    hidden_dim: int
    over_tokens: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.LayerNorm(name="norm")(x)
        if self.over_tokens:
            y = jnp.swapaxes(y, 1, 2)  # [B, C, S]
        out_dim = y.shape[-1]
        y = nn.gelu(nn.Dense(self.hidden_dim, name="proj_in")(y))
        y = nn.Dense(out_dim, name="proj_out")(y)
        if self.over_tokens:
            y = jnp.swapaxes(y, 1, 2)
        return x + y


class _MixerBlock(nn.Module):
    """Token mixing (``mlp_0_tokens``) followed by channel mixing (``mlp_1_channels``)."""

    tokens_mlp_dim: int
    channels_mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _MixingMlp(self.tokens_mlp_dim, over_tokens=True, name="mlp_0_tokens")(x)
        return _MixingMlp(self.channels_mlp_dim, over_tokens=False, name="mlp_1_channels")(x)


class MlpMixer(nn.Module):
    """Patch embedding ``embed`` (Conv, kernel = stride = ``patch_size``, ``hidden_dim`` = C features),
    ``num_blocks`` mixer blocks ``encoder_k``, final LayerNorm ``encoder_norm``, mean over tokens, Dense ``head``.

    S = (H / patch_size) * (W / patch_size) tokens (64 for 32x32 inputs). The Mixer has no dropout: the paper
    applies MAP dropout everywhere except in the Mixer, so ``train`` changes nothing here and no ``'dropout'``
    rng is needed.
    """

    num_classes: int = 10
    patch_size: int = 4
    hidden_dim: int = 256
    tokens_mlp_dim: int = 512
    channels_mlp_dim: int = 512
    num_blocks: int = 6

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout in the Mixer
        check_patch_grid(x, self.patch_size, "MlpMixer")
        p = (self.patch_size, self.patch_size)
        x = nn.Conv(self.hidden_dim, p, strides=p, padding="VALID", name="embed")(x)
        x = x.reshape((x.shape[0], -1, x.shape[-1]))  # [B, S, C]
        for name in indexed_names("encoder", self.num_blocks):
            x = _MixerBlock(self.tokens_mlp_dim, self.channels_mlp_dim, name=name)(x)
        x = nn.LayerNorm(name="encoder_norm")(x)
        x = jnp.mean(x, axis=1)
        return nn.Dense(self.num_classes, name="head")(x)


NETWORK = Network(
    name="mixer",
    label="MLP-Mixer",
    module=MlpMixer,
    input_size=32,
    tiny={"hidden_dim": 16, "tokens_mlp_dim": 16, "channels_mlp_dim": 16, "num_blocks": 1},
    mem_mb=8000,
    ms_per_step={"gpu": 12, "cpu": 400},
    order=2,
    description="MLP-Mixer",
)
