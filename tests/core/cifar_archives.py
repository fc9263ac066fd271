"""Tiny CIFAR archives in the real format (python-2 pickles of numpy arrays in a gzipped tar), for the data tests."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from bmrsparse.data import cifar


class _Py2Pickler(pickle._Pickler):
    """Writes byte and text strings as Python 2 ``str`` (BINSTRING), as the CIFAR files (cPickle, protocol 2) do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1.x (which wrote the real files) named the module numpy.core.multiarray.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def pattern(n, r, c, ch):
    return (7 * n + 11 * r + 5 * c + 101 * ch) % 256


def _batch_data(offset, count):
    """Rows in CIFAR layout: data[n, ch * 1024 + r * 32 + c] = pattern(offset + n, r, c, ch)."""
    n, ch, r, c = np.meshgrid(np.arange(count) + offset, np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return pattern(n, r, c, ch).astype(np.uint8).reshape(count, 3072)


def _tar_add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_cifar_archive(path, name, per_batch=4, n_test=3, replace=None, extra=()):
    """A CIFAR "python version" archive with the real member names, keys and layout (tiny batches).

    Labels of batch member k are k*100 + i (mod num_classes) so their order is checkable.
    ``replace`` maps a member's short name to raw bytes used instead of its pickle.
    """
    spec = cifar.ARCHIVES[name]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    members, offset = [], 0
    for index, member in enumerate(spec.train + spec.test):
        count = n_test if member in spec.test else per_batch
        batch = {
            b"batch_label": b"training batch %d of 5" % (index + 1),
            b"data": _batch_data(offset, count),
            b"filenames": [b"img_%d.png" % (offset + i) for i in range(count)],
        }
        labels = [(index * 7 + i) % spec.num_classes for i in range(count)]
        if name == "cifar10":
            batch[b"labels"] = labels
        else:
            batch[b"fine_labels"] = labels
            batch[b"coarse_labels"] = [lab // 5 for lab in labels]
        members.append((f"{spec.folder}/{member}", replace.get(member, py2_pickle(batch))))
        offset += count
    meta = f"{spec.folder}/batches.meta" if name == "cifar10" else f"{spec.folder}/meta"
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(spec.folder)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        _tar_add(tar, meta, py2_pickle({b"label_names": [b"a", b"b"]}))
        for member_name, payload in members:
            _tar_add(tar, member_name, payload)
        _tar_add(tar, f"{spec.folder}/readme.html", b"<html></html>")
        for entry in extra:
            tar.addfile(*entry) if isinstance(entry, tuple) else tar.addfile(entry)
    return path
