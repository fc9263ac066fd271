"""FashionMNIST (Xiao, Rasul & Vollgraf 2017) from its four gzipped IDX files.

Files: ``train-images-idx3-ubyte.gz`` (60000 x 28 x 28 uint8), ``train-labels-idx1-ubyte.gz`` (60000 uint8),
``t10k-images-idx3-ubyte.gz`` (10000 x 28 x 28), ``t10k-labels-idx1-ubyte.gz`` (10000).

Checksums are MD5 digests of the *decompressed* files. Debian's ``dataset-fashion-mnist`` re-gzipped the
originals, so its ``.gz`` bytes differ from the canonical download while the content is identical; one table
of content digests verifies both. A download is also checked, before it is kept, against the published digest
of the canonical ``.gz`` file (:data:`GZ_MD5`, from zalandoresearch/fashion-mnist's README).

References:
  [1] Xiao, Rasul, Vollgraf (2017). Fashion-MNIST: a novel image dataset for benchmarking machine learning
      algorithms. https://arxiv.org/abs/1708.07747
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._registry import DatasetInfo
from ._sources import locate, read_gzip
from .errors import ChecksumError, DataError

__all__ = ["DATASET", "FILES", "GZ_MD5", "MD5", "MIRRORS", "idx_reader", "parse_idx", "read_fashion_mnist",
           "read_idx_files"]

# role -> file name
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# file name -> MD5 of the decompressed content (47040016, 60008, 7840016 and 10008 bytes).
MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
DIGEST_NAME = "MD5 of the decompressed content"

# file name -> MD5 of the canonical .gz file (what a download is checked against before it is kept).
GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

# The project's public bucket (README of zalandoresearch/fashion-mnist), then the same files in its repository.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

NUM_CLASSES = 10

# IDX type byte -> numpy dtype (big-endian on disk).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, *, source: str = "<idx>") -> np.ndarray:
    """Parse an (uncompressed) IDX file: magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes, data.

    Returns an array in native byte order with the shape from the header. A wrong magic number or a length
    that does not match the header raises :class:`DataError` naming ``source``.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an IDX file (magic number {data[:4].hex() or 'missing'})")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX element type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header truncated ({len(data)} bytes, {ndim} dimensions announced)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{source}: IDX header announces shape {shape} ({expected} bytes) but the file has {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _read_verified(path: Path, expected: str | None) -> bytes:
    content = read_gzip(path, expected)
    if expected is not None:
        actual = hashlib.md5(content, usedforsecurity=False).hexdigest()
        if actual != expected:
            raise ChecksumError(path, expected, actual, what=DIGEST_NAME)
    return content


def read_idx_files(
    paths: Mapping[str, str | os.PathLike],
    files: Mapping[str, str],
    table: Mapping[str, str | None],
    *,
    image_shape: tuple[int, int],
    num_classes: int,
    label: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read and verify an image dataset stored as four gzipped IDX files (FashionMNIST's layout).

    Args:
      paths: ``{file name: path}``.
      files: ``{role: file name}`` for the roles ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels``.
      table: ``{file name: MD5 of the decompressed content}`` (``None`` skips that file's check).
      image_shape: ``(H, W)`` of every image (uint8, one channel).
      num_classes: labels must lie in ``0 .. num_classes - 1``.
      label: the dataset's name in messages.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images uint8 ``[N, H, W, 1]``, labels int64 ``[N]``.
    """
    arrays = {}
    for role, name in files.items():
        path = Path(paths[name])
        if not path.is_file():
            raise FileNotFoundError(f"{label} file {name} not found at {path}")
        arrays[role] = parse_idx(_read_verified(path, table.get(name)), source=str(path))
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != tuple(image_shape) or images.dtype != np.uint8:
            raise DataError(
                f"{label} {split} images: expected uint8 [N, {image_shape[0]}, {image_shape[1]}], "
                f"got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(f"{label} {split}: {images.shape[0]} images but labels of shape {labels.shape}")
        if labels.size and labels.max() >= num_classes:
            raise DataError(f"{label} {split} labels: value {labels.max()} outside 0..{num_classes - 1}")
        out += [images[..., None], labels.astype(np.int64)]
    return tuple(out)


def read_fashion_mnist(
    files: str | os.PathLike | Mapping[str, str | os.PathLike],
    *,
    expected_md5: Mapping[str, str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read and verify the four FashionMNIST files.

    Args:
      files: a folder holding the four files, or ``{file name: path}``.
      expected_md5: ``{file name: MD5 of the decompressed content}``, overriding :data:`MD5` entry by entry
        (a value of ``None`` skips that file's check; meant for tests on hand-made files).

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images uint8 ``[N, 28, 28, 1]``, labels int64 ``[N]``.

    Raises:
      ChecksumError: a file's content digest differs from the table (``CorruptFileError`` if the gzip is
        truncated or damaged).
      DataError: a file is not a valid IDX file of the expected shape.
    """
    if isinstance(files, (str, os.PathLike)):
        paths = {name: Path(files) / name for name in FILES.values()}
    else:
        paths = {name: Path(files[name]) for name in FILES.values()}
    table = {**MD5, **(expected_md5 or {})}
    return read_idx_files(paths, FILES, table, image_shape=(28, 28), num_classes=NUM_CLASSES, label="FashionMNIST")


def idx_reader(
    name: str,
    files: Mapping[str, str],
    md5: Mapping[str, str],
    *,
    image_shape: tuple[int, int],
    num_classes: int,
    label: str,
    mirrors: tuple[str, ...] = (),
    gz_md5: Mapping[str, str] | None = None,
):
    """The :attr:`~bmrsparse.data.DatasetInfo.read` function of a dataset stored as four gzipped IDX files.

    ``files`` maps the roles (``train_images``, ``train_labels``, ``test_images``, ``test_labels``) to file
    names, ``md5`` file names to the MD5 of their decompressed content; ``mirrors`` and ``gz_md5`` (the MD5 of
    each published ``.gz``) allow downloading. The files are looked for as :func:`bmrsparse.data.locate` says.
    """

    def read(source_dir=None, download=True, expected_md5=None):
        table = {**md5, **(expected_md5 or {})}
        paths = locate(name, table, mirrors=mirrors, download_md5=dict(gz_md5 or {}), source_dir=source_dir,
                       download_ok=download)
        return read_idx_files(paths, files, table, image_shape=image_shape, num_classes=num_classes, label=label)

    return read


def _read(source_dir=None, download=True, expected_md5=None):
    """FashionMNIST's reader (the module's tables are read at call time)."""
    read = idx_reader("fashion_mnist", FILES, MD5, image_shape=(28, 28), num_classes=NUM_CLASSES,
                      label="FashionMNIST", mirrors=MIRRORS, gz_md5=GZ_MD5)
    return read(source_dir=source_dir, download=download, expected_md5=expected_md5)


DATASET = DatasetInfo(
    name="fashion_mnist",
    label="FashionMNIST",
    shape=(28, 28, 1),
    num_classes=NUM_CLASSES,
    read=_read,
    checksums=MD5,
    subfolders=("fashion_mnist", "fashion-mnist"),
    local_copies=("/usr/share/datasets/fashion-mnist",),  # Debian: apt-get install dataset-fashion-mnist
    figure="fig1",
    paper_figure="Fig. 1",
    order=0,
)
