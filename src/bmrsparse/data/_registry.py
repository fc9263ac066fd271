"""The dataset registry: everything the library and the workflow need to know about a dataset.

A dataset is declared once, as ``DATASET = DatasetInfo(...)`` (or a tuple of them) in a module of
:mod:`bmrsparse.data`, or in a module of another package named by an entry point of the group
``bmrsparse.datasets``; :func:`register` adds one at run time. :data:`DATASETS` maps names to declarations in the
order of :attr:`DatasetInfo.order` (tables and figures follow it). See :mod:`bmrsparse.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..registry import Registry, check_name

__all__ = ["DatasetInfo", "DATASETS", "ENTRY_POINT_GROUP", "register", "unregister", "get_dataset"]

ENTRY_POINT_GROUP = "bmrsparse.datasets"


@dataclass(frozen=True)
class DatasetInfo:
    """Declaration of a dataset.

    Attributes:
      name: identifier in configs, paths and the ``{dataset}`` wildcard (``[a-z][a-z0-9_]*``).
      label: name in figures and tables.
      shape: ``(H, W, C)`` of one image as read (uint8); a network built for larger images zero-pads it
        (:attr:`bmrsparse.nets.Network.input_size`).
      num_classes: number of labels (0 .. num_classes - 1).
      read: ``read(source_dir=None, download=True, expected_md5=None) -> (x_train, y_train, x_test, y_test)``:
        find the files (:func:`bmrsparse.data.locate` looks in ``source_dir``, ``$BMRSPARSE_DATA_DIR``,
        :attr:`local_copies`, the cache, then the web), verify them against :attr:`checksums` (``expected_md5``
        overrides entries) and return uint8 images ``[N, H, W, C]`` and integer labels.
      checksums: ``{file name: MD5}`` of the source files, as :attr:`read` verifies them.
      subfolders: folder names tried inside ``source_dir`` / ``$BMRSPARSE_DATA_DIR`` before the folder itself
        (default: the name).
      local_copies: folders where system packages install the files.
      figure: name of its performance figure (ACC, ECE, NLL over epochs); default ``performance_<name>``.
      paper_figure: the paper's number of that figure ("Fig. 1"), or "" beyond the paper.
      order: position in tables and figures (then by name).
    """

    name: str
    label: str
    shape: tuple
    num_classes: int
    read: Callable = field(compare=False)
    checksums: dict = field(default_factory=dict, compare=False)
    subfolders: tuple = ()
    local_copies: tuple = ()
    figure: str = ""
    paper_figure: str = ""
    order: float = 100.0

    def __post_init__(self):
        check_name("dataset", self.name)
        if len(self.shape) != 3 or not all(isinstance(d, int) and d > 0 for d in self.shape):
            raise ValueError(f"dataset {self.name!r}: shape must be (H, W, C) of positive ints, got {self.shape}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"dataset {self.name!r}: num_classes must be an int >= 2")
        if not callable(self.read):
            raise ValueError(f"dataset {self.name!r}: read must be callable")
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "subfolders", tuple(self.subfolders) or (self.name,))
        object.__setattr__(self, "figure", self.figure or f"performance_{self.name}")
        check_name("figure", self.figure.lower())


DATASETS: Registry = Registry("dataset", DatasetInfo, "DATASET", ENTRY_POINT_GROUP)
register = DATASETS.register
unregister = DATASETS.unregister
get_dataset = DATASETS.get_or_fail
