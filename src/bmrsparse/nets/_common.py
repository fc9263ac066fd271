"""Helpers shared by the networks: layer names that sort in forward order, input checks, dropout, a VALID
convolution lowered as one matrix product on CPU."""

import contextlib
import contextvars
from typing import Iterator, Sequence

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
        mask = _rng.once(rng, lambda k: jax.random.bernoulli(k, p=keep_prob, shape=inputs.shape))
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


#: The lowering :func:`conv_valid` uses when none is given (None: by backend); set by :func:`conv_lowering`.
_DEFAULT_LOWERING: contextvars.ContextVar[str | None] = contextvars.ContextVar("conv_lowering", default=None)
CONV_LOWERINGS = ("patches", "conv", "rows")


@contextlib.contextmanager
def conv_lowering(lowering: str | None) -> Iterator[None]:
    """Within this context, programs traced call :func:`conv_valid` with ``lowering`` unless they name one
    (``None``: the backend's choice). Tracing happens when a jitted function is first called with new shapes, so the
    context must surround that first call.

    Tests and measurements use it to compare lowerings on the same program (docs/performance.md).
    """
    if lowering is not None and lowering not in CONV_LOWERINGS:
        raise ValueError(f"conv_lowering: lowering must be one of {CONV_LOWERINGS} or None, got {lowering!r}")
    token = _DEFAULT_LOWERING.set(lowering)
    try:
        yield
    finally:
        _DEFAULT_LOWERING.reset(token)


def conv_valid(x: jax.Array, kernel: jax.Array, *, lowering: str | None = None) -> jax.Array:
    """Stride-1 VALID convolution of ``x`` [B, H, W, C_in] with ``kernel`` [kh, kw, C_in, C_out] (HWIO), as
    ``jax.lax.conv_general_dilated`` computes it (a cross-correlation), without the bias.

    ``lowering``: ``"rows"`` multiplies the image rows by a banded matrix built from the kernel (:func:`_conv_rows`);
    ``"patches"`` gathers the kh*kw shifted views of ``x`` into one [B, H', W', kh*kw*C_in] array and multiplies it
    by the reshaped kernel (im2col); ``"conv"`` calls XLA's convolution; ``None`` picks the lowering of the
    enclosing :func:`conv_lowering` context, else ``"rows"`` on CPU and ``"conv"`` elsewhere.
    Why: XLA's CPU convolution is slow for LeNet-5's few channels, its gradient with respect to the kernel above
    all, while matrix products run at the speed of the MLP's layers; of the two products, the rows' is the faster
    in the training step and forward (LeNet-5's step 19-21 -> 16-17 ms, its forward pass at batch 1000 74 ms
    against the patches' 178 and XLA's 82; docs/performance.md has the measurements). GPUs convolve well. The
    lowerings agree to float rounding (the sums run in another order).
    """
    if lowering is None:
        lowering = _DEFAULT_LOWERING.get()
    if lowering is None:
        lowering = "rows" if jax.default_backend() == "cpu" else "conv"
    kh, kw, c_in, c_out = kernel.shape
    if x.ndim != 4 or x.shape[-1] != c_in:
        raise ValueError(f"conv_valid: input {x.shape} does not match the kernel {kernel.shape} (HWIO)")
    if lowering == "conv":
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if lowering == "rows":
        return _conv_rows(x, kernel)
    if lowering != "patches":
        raise ValueError(f"conv_valid: lowering must be one of {CONV_LOWERINGS} or None, got {lowering!r}")
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    if h == 1 and w == 1:  # the kernel covers the whole input: a Dense layer
        return x.reshape(x.shape[0], 1, 1, kh * kw * c_in) @ kernel.reshape(kh * kw * c_in, c_out)
    shifts = [x[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]
    if c_in == 1:
        # one input channel: the shifts stacked on a leading axis copy whole rows (a last axis of size 1 does not)
        cols = jnp.stack([s[..., 0] for s in shifts])  # [kh*kw, B, h, w]
        return jnp.einsum("pbhw,pd->bhwd", cols, kernel.reshape(kh * kw, c_out))
    cols = jnp.concatenate(shifts, axis=-1)  # [B, h, w, kh*kw*C_in], ordered as the kernel's (kh, kw, C_in)
    return cols @ kernel.reshape(kh * kw * c_in, c_out)


#: Output columns per tile of the rows lowering for a convolution that reads the image itself (:func:`row_tile`).
ROW_TILE = 4


def row_tile(w_out: int, c_in: int) -> int:
    """Output columns per matrix product of the rows lowering (:func:`_conv_rows`): the whole output row (``w_out``)
    for a convolution of feature maps, tiles of :data:`ROW_TILE` columns for one that reads the image (``c_in <= 3``).

    Why: a whole row's banded matrix does ``W / kw`` times the convolution's arithmetic (6.4x for LeNet-5's first
    layer on 32 padded columns), which its well-shaped product pays back when the input has channels, not when it has
    one to three. A tile of 4 columns reads 8 (``4 + kw - 1``), 1.6x the arithmetic. Measured on one CPU thread at
    batch 128, LeNet-5's first convolution: forward 2.09 -> 0.82 ms, gradient 8.4 -> 4.2 ms; CIFAR's (3 channels)
    9.3 -> 4.7 and 17.7 -> 8.4 ms; its second (6 -> 16 channels) gains nothing at batch 1024 (docs/performance.md)."""
    return ROW_TILE if c_in <= 3 and w_out > ROW_TILE else w_out


def row_band(kernel, w_out: int, *, xp=jnp):
    """The banded matrix ``[kh * (T + kw - 1) * C_in, T * C_out]`` of :func:`_conv_rows` for ``kernel`` [kh, kw,
    C_in, C_out], ``T = row_tile(w_out, C_in)``: each kernel row's taps on the diagonals. ``xp``: ``jax.numpy``
    inside a traced network, ``numpy`` for a compact network's matrices built once (:mod:`bmrsparse.compact`)."""
    kh, kw, c_in, c_out = kernel.shape
    tile = row_tile(w_out, c_in)
    win = tile + kw - 1
    shifts = xp.stack([xp.eye(win, tile, -j, dtype=kernel.dtype) for j in range(kw)])  # [kw, win, T]
    return xp.einsum("jab,ijco->iacbo", shifts, kernel).reshape(kh * win * c_in, tile * c_out)


def rows_product(x: jax.Array, band: jax.Array, kh: int, kw: int) -> jax.Array:
    """The VALID convolution of ``x`` [B, H, W, C_in] by the ``kh x kw`` kernel whose :func:`row_band` is ``band``:
    each output row's tiles of ``T`` columns, each the ``kh`` input rows' ``T + kw - 1`` columns it reads
    concatenated, times ``band`` in one matrix product."""
    b, h_in, w_in, c_in = x.shape
    h, w = h_in - kh + 1, w_in - kw + 1
    tile = row_tile(w, c_in)
    win, n_tiles = tile + kw - 1, -(-w // tile)
    if n_tiles * tile + kw - 1 > w_in:  # the last tile reads past the row: zero columns, cropped from the output
        x = jnp.pad(x, ((0, 0), (0, 0), (0, n_tiles * tile + kw - 1 - w_in), (0, 0)))
    if n_tiles == 1:
        tiles = x.reshape(b, h_in, 1, win * c_in)
    else:
        tiles = jnp.stack([x[:, :, t * tile:t * tile + win] for t in range(n_tiles)], axis=2)
        tiles = tiles.reshape(b, h_in, n_tiles, win * c_in)
    stacked = jnp.concatenate([tiles[:, i:i + h] for i in range(kh)], axis=-1)  # [B, h, tiles, kh * win * C_in]
    c_out = band.shape[-1] // tile
    out = (stacked @ band).reshape(b, h, n_tiles * tile, c_out)
    return out if n_tiles * tile == w else out[:, :, :w]


def _conv_rows(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """:func:`conv_valid` as one matrix product over image rows: each output row (or tile of it, :func:`row_tile`)
    is the ``kh`` input rows it reads, concatenated, times a banded matrix built from the kernel (:func:`row_band`).
    Its arithmetic is ``(T + kw - 1) / kw`` times the convolution's, but it runs as one well-shaped matrix product
    with no ``kh * kw``-fold copy of the input, so its time follows ``C_in * C_out``: the lowering of the compact
    networks' forward pass too (:func:`bmrsparse.compact.apply`)."""
    kh, kw, _, _ = kernel.shape
    return rows_product(x, row_band(kernel, x.shape[2] - kw + 1), kh, kw)


class ConvValid(nn.Module):
    """``flax.linen.Conv(features, kernel_size, padding="VALID")`` (stride 1, bias) computed by :func:`conv_valid`.

    The same parameters as Flax's (``kernel`` [kh, kw, C_in, C_out] with Flax's default initialiser, ``bias``
    zeros), so states and posteriors are interchangeable with ``nn.Conv``'s.
    """

    features: int
    kernel_size: Sequence[int]
    lowering: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv_valid(x, kernel.astype(x.dtype), lowering=self.lowering) + bias.astype(x.dtype)
