"""Atomic file output: a file either appears complete under its final name or not at all.

Every writer puts its bytes into a temporary file in the destination's own folder (so the final
``os.replace`` is a rename within one file system, which POSIX makes atomic), flushes it to disk and only
then renames it onto the destination. If anything fails on the way, the temporary file is removed and the
destination keeps whatever it held before (or stays absent). A killed process can leave a hidden
``.<name>.tmp-*`` file behind but never a truncated file under the real name.

Example::

    from bmrsparse.io import atomic_path, atomic_savez

    atomic_savez("results/arrays.npz", x=x, y=y)
    with atomic_path("results/fig1.pdf") as tmp:
        fig.savefig(tmp)  # the suffix is kept, so writers that look at it still work
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "atomic_savez", "atomic_write_bytes", "atomic_write_text"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_temp(path: Path) -> Path:
    """Create an empty temporary file next to ``path`` (same folder, same suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp-", suffix=path.suffix)
    os.close(fd)
    # mkstemp creates mode 0600; give the final file the permissions an ordinary open() would.
    os.chmod(name, 0o666 & ~_current_umask())
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path that is renamed onto ``path`` only if the ``with`` block succeeds.

    The temporary file lies in the destination's folder (created if needed) and has the same suffix, so
    tools that choose a format from the extension (``np.savez``, ``savefig``, ``to_csv``) behave as they
    would on ``path`` itself. It exists (empty) when the block starts; the block overwrites it. If the block
    raises, the temporary file is removed, the exception propagates and ``path`` is left untouched.

    Args:
      path: the final destination.

    Yields:
      The temporary :class:`pathlib.Path` to write to.
    """
    final = Path(path)
    tmp = _make_temp(final)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"atomic_path: the block removed or never created its temporary file {tmp}")
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes: data must be bytes, got {type(data).__name__}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (parent folders are created)."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text: text must be str, got {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


def atomic_savez(path: str | os.PathLike, **arrays) -> None:
    """``np.savez(path, **arrays)`` through a temporary file and ``os.replace``.

    Unlike ``np.savez`` the name is used exactly as given (no ``.npz`` is appended). Parent folders are
    created. Values are converted with ``np.asarray``; object arrays are refused because reading them back
    would need ``allow_pickle=True``.
    """
    if not arrays:
        raise ValueError(f"atomic_savez: no arrays given for {path}")
    converted = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"atomic_savez: array {key!r} for {path} has dtype object, which needs pickle to load")
        converted[key] = array
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **converted)
