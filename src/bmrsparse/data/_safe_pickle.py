"""A restricted unpickler for the CIFAR "python version" batches.

Those files are protocol-2 pickles written by Python 2: a dict whose keys are byte strings and whose values
are byte strings, lists of ints and numpy arrays. Numpy arrays unpickle through three globals
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``); nothing else in the format
needs a global. :class:`RestrictedUnpickler` admits exactly those and raises :class:`UnsafePickleError`
for any other, before it is imported or called, so a tampered archive cannot run code.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from .errors import UnsafePickleError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "safe_loads"]


def _reconstruct():
    try:  # numpy >= 2 (and 1.26's forward-compatibility alias)
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import _reconstruct as fn
    return fn


# (module, name) as written in the pickle -> the object it may resolve to. Files written by numpy 1.x name
# ``numpy.core``; numpy 2 names ``numpy._core``; both mean the same function.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS` and no persistent ids."""

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle the global {module}.{name}; the CIFAR format only needs "
                "numpy arrays, dicts, lists, bytes and numbers, so the archive has been tampered with. "
                "Delete it and download the original."
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refusing a persistent id ({pid!r}); the CIFAR format has none")


def safe_loads(data: bytes, *, source: str = "<pickle>", encoding: str = "bytes"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``encoding="bytes"`` keeps Python 2 str as bytes)."""
    return RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
