"""Input preprocessing: per-channel standardisation and zero padding (images are channel-last ``[..., H, W, C]``)."""

from __future__ import annotations

import numpy as np

__all__ = ["channel_stats", "pad_to", "standardise"]

_CHUNK_IMAGES = 1024


def channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the training images, in [0, 255] units.

    Args:
      x_train: uint8 images ``[N, H, W, C]``.

    Returns:
      ``(mean, std)``, each float32 ``[C]``; ``std`` is the population standard deviation over all
      ``N * H * W`` values of a channel. Sums are accumulated exactly in int64, chunk by chunk, so the
      result does not depend on the order of the images and memory stays small.
    """
    x_train = np.asarray(x_train)
    if x_train.dtype != np.uint8 or x_train.ndim != 4:
        raise ValueError(f"channel_stats expects uint8 images [N, H, W, C], got {x_train.dtype} {x_train.shape}")
    if x_train.shape[0] == 0:
        raise ValueError("channel_stats: no training images")
    channels = x_train.shape[-1]
    total = np.zeros(channels, np.int64)
    total_sq = np.zeros(channels, np.int64)
    for start in range(0, x_train.shape[0], _CHUNK_IMAGES):
        chunk = x_train[start : start + _CHUNK_IMAGES].reshape(-1, channels).astype(np.int64)
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
    count = x_train.size // channels
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel (last axis), as float32.

    Args:
      x: images ``[..., C]`` (uint8 in [0, 255], or float in the same units).
      mean, std: ``[C]`` from :func:`channel_stats`; every ``std`` must be positive.
    """
    x = np.asarray(x)
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    if x.ndim == 0 or mean.shape != (x.shape[-1],) or std.shape != (x.shape[-1],):
        raise ValueError(
            f"standardise: images with {x.shape[-1] if x.ndim else 0} channels need mean and std of that length, "
            f"got {mean.shape} and {std.shape}"
        )
    if not np.all(std > 0):
        raise ValueError(f"standardise: std must be positive, got {std}")
    return (x.astype(np.float32) - mean) / std


def pad_to(x: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-pad the height and width of ``[..., H, W, C]`` images to ``size`` x ``size``.

    The padding is split evenly (an odd remainder goes to the bottom / right), e.g. 28 -> 32 adds two rows
    and two columns of zeros on each side. The dtype is kept. Padding standardised images puts the pad at
    the training mean; padding the uint8 images first puts it at black. Images already ``size`` wide are
    returned unchanged; larger ones raise ``ValueError``.
    """
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"pad_to expects images [..., H, W, C], got shape {x.shape}")
    height, width = x.shape[-3], x.shape[-2]
    if height > size or width > size:
        raise ValueError(f"pad_to: images of {height}x{width} are larger than {size}x{size}")
    if height == size and width == size:
        return x
    dh, dw = size - height, size - width
    pad = [(0, 0)] * (x.ndim - 3) + [(dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)]
    return np.pad(x, pad)
