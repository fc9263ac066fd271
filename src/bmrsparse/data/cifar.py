"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the "python version" tar.gz archives.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` and ``test_batch``;
``cifar-100-python.tar.gz`` holds ``cifar-100-python/train`` and ``test``. Each member is a protocol-2 pickle
(written by Python 2) of a dict with byte-string keys: ``b"data"`` a uint8 array ``[N, 3072]`` whose rows
are channel-first images (1024 red, 1024 green, then 1024 blue values, each a row-major 32 x 32 plane) and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100, 100 classes) a list of ints.

Safety: the archive's MD5 is checked against the published digest *before* any member is unpickled, members
are read from the tar stream in memory (nothing is extracted to disk; absolute or ``..`` names and links are
refused), and the pickles go through :class:`~bmrsparse.data._safe_pickle.RestrictedUnpickler`.

References:
  [1] Krizhevsky (2009). Learning multiple layers of features from tiny images. Tech. report, U. Toronto.
      https://www.cs.toronto.edu/~kriz/cifar.html
"""

from __future__ import annotations

import gzip
import os
import pickle
import posixpath
import tarfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._safe_pickle import safe_loads
from ._registry import DatasetInfo
from ._sources import locate, md5_file
from .errors import ChecksumError, CorruptFileError, DataError, UnsafeArchiveError, UnsafePickleError

__all__ = ["ARCHIVES", "DATASET", "MIRRORS", "Archive", "batch_to_images", "read_cifar"]


class Archive(NamedTuple):
    """Layout of one CIFAR "python version" archive."""

    filename: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    num_classes: int


# Published MD5s from the CIFAR page.
ARCHIVES = {
    "cifar10": Archive(
        filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        label_key=b"labels",
        num_classes=10,
    ),
    "cifar100": Archive(
        filename="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        label_key=b"fine_labels",
        num_classes=100,
    ),
}

# The CIFAR page, and the host it has also been served from (the checksum decides what is kept).
MIRRORS = ("https://www.cs.toronto.edu/~kriz/", "https://cave.cs.toronto.edu/kriz/")

IMAGE_SHAPE = (32, 32, 3)
_ROW = 32 * 32 * 3


def batch_to_images(data: np.ndarray) -> np.ndarray:
    """Convert CIFAR rows ``[N, 3072]`` (channel-first planes) to images ``[N, 32, 32, 3]`` (channel-last).

    ``out[n, row, col, c] == data[n, c * 1024 + row * 32 + col]``.
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != _ROW:
        raise DataError(f"CIFAR data must have shape [N, {_ROW}], got {data.shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _check_member_name(name: str, archive: Path) -> None:
    normalised = posixpath.normpath(name)
    if name.startswith(("/", "\\")) or os.path.isabs(name) or normalised == ".." or normalised.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the archive folder; refusing the archive")


def _parse_batch(obj, source: str, spec: Archive) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    data = obj.get(b"data")
    labels = obj.get(spec.label_key)
    if data is None or labels is None:
        raise DataError(f"{source}: missing key b'data' or {spec.label_key!r} (keys: {sorted(obj)})")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        got = f"{type(data).__name__} {getattr(data, 'dtype', '')}"
        raise DataError(f"{source}: b'data' must be a uint8 array, got {got}")
    images = batch_to_images(data)
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{source}: {spec.label_key!r} is not a list of integers ({exc})") from None
    if labels.shape != (images.shape[0],):
        raise DataError(f"{source}: {images.shape[0]} images but {spec.label_key!r} has shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(f"{source}: labels outside 0..{spec.num_classes - 1} ({labels.min()}..{labels.max()})")
    return images, labels


def _unpickle(payload: bytes, source: str):
    try:
        return safe_loads(payload, source=source)
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{source}: not a valid CIFAR batch pickle ({type(exc).__name__}: {exc})") from None


def read_cifar(
    name: str, archive_path: str | os.PathLike, *, expected_md5: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Verify and read a CIFAR "python version" archive without extracting it.

    Args:
      name: ``"cifar10"`` or ``"cifar100"``.
      archive_path: the ``.tar.gz`` file.
      expected_md5: MD5 of the archive; defaults to the published one in :data:`ARCHIVES`.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images uint8 ``[N, 32, 32, 3]``, labels int64 ``[N]``
      (CIFAR-100: the 100 fine labels).

    Raises:
      ChecksumError: the archive's MD5 differs (checked before anything is unpickled).
      CorruptFileError: the archive is truncated or not a valid tar.gz.
      UnsafeArchiveError: a member name is absolute or contains ``..``, or a batch is not a regular file.
      UnsafePickleError: a batch pickle asks for a global outside the CIFAR format.
      DataError: a batch is missing or malformed.
    """
    if name not in ARCHIVES:
        raise ValueError(f"unknown CIFAR dataset {name!r}; expected one of {sorted(ARCHIVES)}")
    spec = ARCHIVES[name]
    path = Path(archive_path)
    expected = spec.md5 if expected_md5 is None else expected_md5
    actual = md5_file(path)
    if actual != expected:
        raise ChecksumError(path, expected, actual)

    wanted = {f"{spec.folder}/{member}" for member in spec.train + spec.test}
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:  # streaming: each member is read while the stream is positioned on it
                _check_member_name(member.name, path)
                if member.name not in wanted:
                    continue
                if not member.isfile():
                    raise UnsafeArchiveError(f"{path}: member {member.name} is not a regular file")
                if member.name in batches:
                    raise UnsafeArchiveError(f"{path}: member {member.name} appears twice")
                payload = tar.extractfile(member).read()
                source = f"{path}:{member.name}"
                batches[member.name] = _parse_batch(_unpickle(payload, source), source, spec)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptFileError(path, expected, f"tar.gz: {exc}") from exc

    missing = sorted(wanted - batches.keys())
    if missing:
        raise DataError(f"{path}: not a complete CIFAR archive, missing member(s) {', '.join(missing)}")

    def stack(members):
        parts = [batches[f"{spec.folder}/{m}"] for m in members]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_train, y_train = stack(spec.train)
    x_test, y_test = stack(spec.test)
    return x_train, y_train, x_test, y_test


def _reader(name: str):
    """The :attr:`~bmrsparse.data.DatasetInfo.read` of one archive: located, downloaded if allowed, verified."""
    spec = ARCHIVES[name]

    def read(source_dir=None, download=True, expected_md5=None):
        expected = dict(expected_md5 or {}).get(spec.filename, spec.md5)
        files = locate(name, {spec.filename: expected}, mirrors=MIRRORS, download_md5={spec.filename: expected},
                       source_dir=source_dir, download_ok=download)
        return read_cifar(name, files[spec.filename], expected_md5=expected)

    return read


DATASET = (
    DatasetInfo(name="cifar10", label="CIFAR-10", shape=IMAGE_SHAPE, num_classes=10, read=_reader("cifar10"),
                checksums={ARCHIVES["cifar10"].filename: ARCHIVES["cifar10"].md5}, subfolders=("cifar10", "cifar-10"),
                figure="figS1", paper_figure="Fig. S1", order=1),
    DatasetInfo(name="cifar100", label="CIFAR-100", shape=IMAGE_SHAPE, num_classes=100, read=_reader("cifar100"),
                checksums={ARCHIVES["cifar100"].filename: ARCHIVES["cifar100"].md5},
                subfolders=("cifar100", "cifar-100"), figure="figS2", paper_figure="Fig. S2", order=2),
)
