"""Datasets: a registry of declarations (the paper's three and any added), verified, prepared once, standardised.

Every dataset is declared once as ``DATASET = DatasetInfo(...)`` in a module of this package (``fashion_mnist``,
``cifar``) or of another package named by an entry point of the group ``bmrsparse.datasets``
(:mod:`bmrsparse.data._registry`); :data:`DATASETS` maps names to declarations.

Typical use::

    from bmrsparse import data

    data.prepare_dataset("fashion_mnist", "results/data/fashion_mnist.npz")  # local copy or download, verified
    ds = data.load_prepared("results/data/fashion_mnist.npz")
    mean, std = data.channel_stats(ds.x_train)
    x = data.pad_to(data.standardise(ds.x_train, mean, std), 32)  # [60000, 32, 32, 1] float32

Where the source files are looked for, and how to point at a local copy, is described in
:mod:`bmrsparse.data._sources` and in :func:`prepare_dataset`.
"""

from ._registry import ENTRY_POINT_GROUP, DatasetInfo, get_dataset, register, unregister
from ._sources import DATA_DIR_ENV, cache_dir, candidate_dirs, locate
from .cifar import batch_to_images, read_cifar
from .errors import (
    ChecksumError,
    CorruptFileError,
    DataError,
    DatasetUnavailableError,
    UnsafeArchiveError,
    UnsafePickleError,
)
from .fashion_mnist import idx_reader, parse_idx, read_fashion_mnist, read_idx_files
from .prepared import DATASETS, NUM_CLASSES, Dataset, load_prepared, prepare_dataset, read_raw
from .transforms import channel_stats, pad_to, standardise

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ENTRY_POINT_GROUP",
    "get_dataset",
    "idx_reader",
    "locate",
    "read_idx_files",
    "register",
    "unregister",
    "DATA_DIR_ENV",
    "NUM_CLASSES",
    "ChecksumError",
    "CorruptFileError",
    "DataError",
    "Dataset",
    "DatasetUnavailableError",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "batch_to_images",
    "cache_dir",
    "candidate_dirs",
    "channel_stats",
    "load_prepared",
    "pad_to",
    "parse_idx",
    "prepare_dataset",
    "read_cifar",
    "read_fashion_mnist",
    "read_raw",
    "standardise",
]

DATASETS.discover(__path__, __name__)
