"""Prepare a dataset once into a verified ``.npz`` file, and load it back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..io import atomic_savez, load_npz
from ._registry import DATASETS, get_dataset

__all__ = ["DATASETS", "NUM_CLASSES", "Dataset", "load_prepared", "prepare_dataset"]

#: Number of classes per registered dataset (a live view of the registry).
NUM_CLASSES = DATASETS.attribute_view("num_classes")


class Dataset(NamedTuple):
    """A prepared dataset: uint8 images ``[N, H, W, C]`` and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def read_raw(
    name: str,
    *,
    source_dir: str | os.PathLike | None = None,
    download: bool = True,
    expected_md5: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find, verify and read dataset ``name`` with its declared reader; return ``(x_train, y_train, x_test, y_test)``
    (see prepare_dataset)."""
    return get_dataset(name).read(source_dir=source_dir, download=download, expected_md5=expected_md5)


def prepare_dataset(
    name: str,
    out_path: str | os.PathLike,
    *,
    source_dir: str | os.PathLike | None = None,
    download: bool = True,
    expected_md5: Mapping[str, str] | None = None,
) -> None:
    """Find, verify and convert dataset ``name`` into ``out_path`` (an ``.npz``, written atomically).

    The source bytes come from ``source_dir`` if it holds them, else ``$BMRSPARSE_DATA_DIR``, else a known
    local copy (Debian's ``/usr/share/datasets/fashion-mnist``), else the download cache, else the canonical
    URL (only if ``download``; pooch verifies the download against the published MD5 before it is kept in
    ``source_dir`` or the cache).
    See :mod:`bmrsparse.data._sources` for the exact order.

    The ``.npz`` holds ``x_train``, ``x_test`` (uint8 ``[N, H, W, C]``: FashionMNIST ``[*, 28, 28, 1]``,
    CIFAR ``[*, 32, 32, 3]``), ``y_train``, ``y_test`` (int64), ``name`` (str) and ``num_classes`` (int64).

    Args:
      name: a registered dataset (:data:`bmrsparse.data.DATASETS`).
      out_path: the ``.npz`` to write (parent folders are created).
      source_dir: a folder holding the original files (FashionMNIST's four ``*-ubyte.gz``, or
        ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``), directly or in a subfolder named after
        the dataset. Downloads are kept here when given.
      download: allow downloading from the canonical URL when no local copy exists.
      expected_md5: ``{file name: digest}`` replacing published digests (for copies you made yourself and
        for tests); FashionMNIST digests are of the decompressed content, CIFAR digests of the archive.

    Raises:
      DatasetUnavailableError: no local copy and ``download`` is false or the download failed; the message
        says where to put a local copy.
      ChecksumError: a file differs from its published digest (or is truncated: ``CorruptFileError``).
      UnsafePickleError, UnsafeArchiveError: a CIFAR archive holds something outside its format.
      Nothing is written to ``out_path`` when any error is raised.
    """
    x_train, y_train, x_test, y_test = read_raw(
        name, source_dir=source_dir, download=download, expected_md5=expected_md5
    )
    atomic_savez(
        out_path,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        name=np.array(name),
        num_classes=np.array(NUM_CLASSES[name], np.int64),
    )


def load_prepared(path: str | os.PathLike) -> Dataset:
    """Load a file written by :func:`prepare_dataset`, checking its digest, keys, dtypes and shapes.

    Raises:
      bmrsparse.io.DamagedFileError: the file is cut short, changed or has no digest (the message says how to
        remake it).
      ValueError: the file is intact but not a prepared dataset (keys, dtypes or shapes).
    """
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test", "name", "num_classes")
    arrays = load_npz(path, producer="prepare_dataset (bmrsparse.data.prepare_dataset)")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not a prepared dataset, missing {', '.join(missing)}; rerun prepare_dataset")
    name = str(arrays["name"])
    num_classes = int(arrays["num_classes"])
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ValueError(f"{path}: x_{split} must be uint8 [N, H, W, C], got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{path}: y_{split} must be integer labels [{x.shape[0]}], got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{path}: y_{split} has labels outside 0..{num_classes - 1}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        train_shape, test_shape = arrays["x_train"].shape[1:], arrays["x_test"].shape[1:]
        raise ValueError(f"{path}: train images {train_shape} differ from test images {test_shape}")
    return Dataset(
        name=name,
        x_train=arrays["x_train"],
        y_train=arrays["y_train"].astype(np.int64, copy=False),
        x_test=arrays["x_test"],
        y_test=arrays["y_test"].astype(np.int64, copy=False),
        num_classes=num_classes,
    )
