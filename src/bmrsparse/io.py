"""Atomic, verified file output: a file either appears complete under its final name or not at all, and a file
one job writes for another to read carries a SHA-256 digest that the reader checks.

Every writer puts its bytes into a temporary file in the destination's own folder (so the final
``os.replace`` is a rename within one file system, which POSIX makes atomic), flushes it to disk and only
then renames it onto the destination. If anything fails on the way, the temporary file is removed and the
destination keeps whatever it held before (or stays absent). A killed process can leave a hidden
``.<name>.tmp-*`` file behind but never a truncated file under the real name.

Verification (every ``.npz`` and every CSV that a later job reads: prepared data, posteriors and checkpoints,
per-job metrics, the collected metrics, sparsity curves, the step timing):

- :func:`atomic_savez` stores the SHA-256 of the arrays (names, dtypes, shapes and bytes) as the reserved member
  ``__sha256__``; :func:`load_npz` recomputes it.
- :func:`atomic_write_verified` writes a text file and, beside it, ``<name>.sha256`` in ``sha256sum`` format (so
  ``sha256sum -c metrics.csv.sha256`` checks it by hand); :func:`read_verified` and :func:`read_csv` check it.
  (A digest line inside a CSV would break every plain ``pandas.read_csv``, hence the sidecar; the workflow
  declares it as an output of the rule, so Snakemake's between-workflow cache keeps it with the CSV.)

A file cut short, a flipped byte, a missing digest, or any zip or parse error raises :class:`DamagedFileError`,
whose message names the file, says how it is damaged and gives the command that remakes it. Files without a digest
(written by bmrsparse before digests existed, or by another program) are refused with the same message: the
workflow reruns such jobs anyway, because the library digest in their params changed.

Training states (``results/**/posterior.npz`` and checkpoints) are written and read by :mod:`bmrsparse.state` with
these helpers; this module holds only the generic file helpers and knows nothing of training.

Example::

    from bmrsparse.io import atomic_path, atomic_savez, load_npz

    atomic_savez("results/arrays.npz", x=x, y=y)
    arrays = load_npz("results/arrays.npz")  # {"x": ..., "y": ...}, verified
    with atomic_path("results/fig1.pdf") as tmp:
        fig.savefig(tmp)  # the suffix is kept, so writers that look at it still work
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "COMMAND_ENV",
    "DIGEST_MEMBER",
    "SIDECAR_SUFFIX",
    "DamagedFileError",
    "atomic_path",
    "atomic_savez",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_verified",
    "load_npz",
    "read_csv",
    "read_verified",
    "remake_instructions",
]

#: Reserved member of a verified ``.npz``: the hex SHA-256 of the other members (see :func:`arrays_digest`).
DIGEST_MEMBER = "__sha256__"
#: Suffix of the digest file written beside a verified text file (``sha256sum`` format).
SIDECAR_SUFFIX = ".sha256"
#: The Snakemake command of the run (set by the workflow), quoted in the remake instructions of a damaged file.
COMMAND_ENV = "BMRSPARSE_SNAKEMAKE_COMMAND"
#: Snakemake's between-workflow cache folder (``--cache``).
CACHE_ENV = "SNAKEMAKE_OUTPUT_CACHE"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


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
    """``np.savez(path, **arrays)`` through a temporary file and ``os.replace``, with a digest for :func:`load_npz`.

    Unlike ``np.savez`` the name is used exactly as given (no ``.npz`` is appended). Parent folders are
    created. Values are converted with ``np.asarray``; object arrays are refused because reading them back
    would need ``allow_pickle=True``. The reserved member :data:`DIGEST_MEMBER` holds :func:`arrays_digest` of
    the others.
    """
    if not arrays:
        raise ValueError(f"atomic_savez: no arrays given for {path}")
    if DIGEST_MEMBER in arrays:
        raise ValueError(f"atomic_savez: {DIGEST_MEMBER!r} is reserved for the digest")
    converted = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"atomic_savez: array {key!r} for {path} has dtype object, which needs pickle to load")
        converted[key] = array
    converted[DIGEST_MEMBER] = np.asarray(arrays_digest(converted))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **converted)


# ------------------------------------------------------------------------------------------------ verification
class DamagedFileError(ValueError):
    """A file written for another job to read is damaged: cut short, changed, without its digest, or unreadable.

    Attributes:
      path: the file as the reader was given it (a workflow output, possibly a link into Snakemake's cache).
      how: what is wrong (e.g. ``"digest mismatch: ..."``).
      remake: the instructions that remake it (:func:`remake_instructions`).
    """

    def __init__(self, path: str | os.PathLike, how: str, *, producer: str | None = None):
        self.path = str(path)
        self.how = how
        self.remake = remake_instructions(path, producer=producer)
        super().__init__(f"{self.path} is damaged ({how}). {self.remake}")


def _snakemake_command() -> str | None:
    command = os.environ.get(COMMAND_ENV, "").strip()
    return command or None


def remake_instructions(path: str | os.PathLike, *, producer: str | None = None) -> str:
    """How to remake a damaged file ``path``: what to delete and which command to run.

    A workflow output (a path under ``results/``) is deleted (with its digest file) and remade by Snakemake: the
    command of the run when the workflow recorded it (:data:`COMMAND_ENV`), else ``snakemake <file>``; Snakemake
    then reruns every job that reads it. A link into Snakemake's between-workflow cache also names the cache
    entry, which must go too (else ``--cache`` links the same damaged bytes again). Any other file is remade by
    ``producer`` (the function that wrote it), when given.
    """
    link = Path(path)
    rel = os.path.relpath(os.path.abspath(link))
    if rel.startswith(".."):
        rel = os.path.abspath(link)
    targets = [rel]
    sidecar = Path(rel + SIDECAR_SUFFIX)
    if not rel.endswith(SIDECAR_SUFFIX) and (sidecar.exists() or sidecar.is_symlink()):
        targets.append(str(sidecar))
    cached = []
    for item in list(targets):
        if os.path.islink(item):
            entry = os.path.realpath(item)
            cached.append(entry)
            targets.append(entry)
    note = ""
    if cached:
        folder = os.environ.get(CACHE_ENV) or os.path.dirname(cached[0])
        note = (f"It is a link to {cached[0]} in Snakemake's between-workflow cache ({folder}), so every run with "
                "--cache that uses this entry gets the same damaged bytes; the command below deletes the entry too, "
                "and the job that made it runs again and stores a good copy. ")
    rm = "rm -f " + " ".join(shlex.quote(t) for t in targets)
    parts = Path(rel).parts
    if "results" in parts and not os.path.isabs(rel):
        command = _snakemake_command()
        if command:
            how = f"Remake it (and every job that reads it) with: {rm} && {command}"
        else:
            how = (f"Remake it (and every job that reads it) with: {rm} && snakemake --cores all {shlex.quote(rel)} "
                   "(with the --configfile/--profile options of your run), then rerun your workflow command.")
        return note + how
    if producer:
        return note + f"Delete it ({rm}) and rerun {producer} to write it again."
    return note + f"Delete it ({rm}) and write it again with the program that made it."


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex SHA-256 of named arrays: each name, dtype, shape and C-order bytes, in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(k for k in arrays if k != DIGEST_MEMBER):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_npz(path: str | os.PathLike, *, producer: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` written by :func:`atomic_savez`, after checking its digest.

    Args:
      path: the file.
      producer: what writes it (named in the message of a damaged file outside the workflow's ``results/``).

    Returns:
      ``{name: array}`` without the digest member.

    Raises:
      FileNotFoundError: no file at ``path``.
      DamagedFileError: the file is cut short, not an ``.npz``, fails a zip CRC, has no digest or another one.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DamagedFileError(path, "not an .npz archive", producer=producer)
            with loaded as npz:
                arrays = {k: npz[k] for k in npz.files}
    except (FileNotFoundError, PermissionError, DamagedFileError):
        raise
    except Exception as exc:  # noqa: BLE001  zipfile and numpy raise many types on damaged bytes (BadZipFile,
        # zlib.error, EOFError, ValueError, KeyError, RuntimeError "encrypted", NotImplementedError, MemoryError...)
        size = path.stat().st_size if path.exists() else 0
        how = (f"truncated or overwritten: {size} bytes that do not read as a complete .npz archive "
               f"({type(exc).__name__}: {exc})")
        raise DamagedFileError(path, how, producer=producer) from None  # the cause is in the message
    recorded = arrays.pop(DIGEST_MEMBER, None)
    if recorded is None:
        raise DamagedFileError(path, f"no {DIGEST_MEMBER} digest: written by an older bmrsparse or another program",
                               producer=producer)
    recorded = str(recorded)
    actual = arrays_digest(arrays)
    if recorded != actual:
        raise DamagedFileError(path, f"digest mismatch: recorded sha256 {recorded[:16]}..., content "
                               f"{actual[:16]}...", producer=producer)
    return arrays


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def atomic_write_verified(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Write ``data`` to ``path`` and its SHA-256 to ``<path>.sha256`` (``sha256sum`` format), both atomically.

    The file is written first: a process killed in between leaves a file whose digest file is missing or stale,
    which :func:`read_verified` refuses.
    """
    payload = data.encode(encoding) if isinstance(data, str) else data
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_verified: data must be str or bytes, got {type(data).__name__}")
    path = Path(path)
    digest = hashlib.sha256(payload).hexdigest()
    atomic_write_bytes(path, bytes(payload))
    atomic_write_text(_sidecar(path), f"{digest}  {path.name}\n")


def read_verified(path: str | os.PathLike, *, producer: str | None = None) -> bytes:
    """The bytes of a file written by :func:`atomic_write_verified`, after checking them against ``<path>.sha256``.

    Raises:
      FileNotFoundError: no file at ``path``.
      DamagedFileError: the digest file is missing or unreadable, or the bytes have another digest.
    """
    path = Path(path)
    payload = path.read_bytes()
    sidecar = _sidecar(path)
    try:
        recorded = sidecar.read_text(encoding="ascii").split(maxsplit=1)[0]
    except FileNotFoundError:
        raise DamagedFileError(path, f"its digest file {sidecar} is missing: written by an older bmrsparse or "
                               "another program, or cut off from it", producer=producer) from None
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise DamagedFileError(path, f"its digest file {sidecar} is unreadable ({exc})", producer=producer) from None
    if not _HEX64.fullmatch(recorded):
        raise DamagedFileError(path, f"its digest file {sidecar} does not hold a sha256", producer=producer)
    actual = hashlib.sha256(payload).hexdigest()
    if actual != recorded:
        raise DamagedFileError(path, f"digest mismatch: {len(payload)} bytes of sha256 {actual[:16]}..., recorded "
                               f"{recorded[:16]}... (cut short or changed)", producer=producer)
    return payload


def read_csv(path: str | os.PathLike, *, producer: str | None = None, **kwargs):
    """``pandas.read_csv`` of a CSV written by :func:`atomic_write_verified`, after :func:`read_verified`."""
    import pandas as pd

    payload = read_verified(path, producer=producer)
    try:
        return pd.read_csv(io.BytesIO(payload), **kwargs)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DamagedFileError(path, f"not a readable CSV ({type(exc).__name__}: {exc})", producer=producer) from None
