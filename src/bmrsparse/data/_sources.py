"""Where dataset files come from: a local folder, a known local copy, the download cache, or the web.

Lookup order for each file (the first folder that holds it wins):

1. ``source_dir`` (the argument; the workflow passes its config key ``data_dir``), as ``<dir>/<subfolder>``
   for each of the dataset's subfolder names, then ``<dir>`` itself;
2. the environment variable ``BMRSPARSE_DATA_DIR``, in the same two ways;
3. known local copies (:data:`LOCAL_COPIES`, e.g. Debian's ``/usr/share/datasets/fashion-mnist``);
4. the download cache ``$XDG_CACHE_HOME/bmrsparse/<dataset>`` (default ``~/.cache/bmrsparse/<dataset>``);
5. the canonical URLs, if downloading is allowed. A download goes to a temporary file, is verified, and only
   then renamed into ``source_dir`` (when given) or the cache folder.

Files found locally are verified by the readers when they are read; nothing is trusted unverified.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .errors import ChecksumError, CorruptFileError, DatasetUnavailableError

__all__ = [
    "DATA_DIR_ENV",
    "LOCAL_COPIES",
    "SUBFOLDERS",
    "cache_dir",
    "candidate_dirs",
    "locate",
    "md5_file",
    "md5_gunzip",
]

DATA_DIR_ENV = "BMRSPARSE_DATA_DIR"

# Folder names tried inside source_dir / $BMRSPARSE_DATA_DIR before the folder itself.
SUBFOLDERS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("fashion_mnist", "fashion-mnist"),
    "cifar10": ("cifar10", "cifar-10"),
    "cifar100": ("cifar100", "cifar-100"),
}

# Copies installed by system packages (Debian: `apt-get install dataset-fashion-mnist`).
LOCAL_COPIES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
    "cifar10": (),
    "cifar100": (),
}

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def md5_file(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file's bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_gzip(path: str | os.PathLike, expected: str | None = None) -> bytes:
    """The decompressed content of a gzip file; a truncated or damaged file raises :class:`CorruptFileError`."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptFileError(path, expected, f"gzip: {exc}") from exc


def md5_gunzip(path: str | os.PathLike, expected: str | None = None) -> str:
    """Hex MD5 digest of a gzip file's decompressed content (see :func:`read_gzip` for errors)."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptFileError(path, expected, f"gzip: {exc}") from exc
    return digest.hexdigest()


def cache_dir(name: str) -> Path:
    """Download cache of dataset ``name``: ``$XDG_CACHE_HOME/bmrsparse/<name>`` or ``~/.cache/bmrsparse/<name>``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bmrsparse" / name


def candidate_dirs(name: str, source_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in order (see the module docstring)."""
    dirs: list[Path] = []
    for base in (source_dir, os.environ.get(DATA_DIR_ENV) or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs.extend(base / sub for sub in SUBFOLDERS[name])
            dirs.append(base)
    dirs.extend(Path(p) for p in LOCAL_COPIES.get(name, ()))
    dirs.append(cache_dir(name))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def unavailable_message(name: str, missing: Iterable[str], searched: Iterable[Path], urls: Iterable[str]) -> str:
    missing = list(missing)
    sub = SUBFOLDERS[name][0]
    return (
        f"dataset {name!r} is not available: missing file(s) {', '.join(missing)}. "
        f"Looked in: {', '.join(str(d) for d in searched)}. "
        f"To use a local copy, put {' and '.join(missing)} in a folder and pass it as source_dir=<folder> to "
        f"bmrsparse.data.prepare_dataset (in the workflow: the config key `data_dir`, e.g. "
        f"`--config data_dir=/path/to/folder`), or set the environment variable {DATA_DIR_ENV}=<folder> "
        f"(files directly in it or in its subfolder {sub}/). "
        f"Otherwise allow downloading (download=True) from: {', '.join(urls)}."
    )


def _download(
    filename: str,
    urls: list[str],
    dest_dir: Path,
    expected: str,
    digest: Callable[[Path, str], str],
    digest_name: str,
) -> Path:
    """Download ``filename`` from the first URL whose bytes verify; keep it as ``dest_dir/filename``."""
    created = not dest_dir.exists()
    dest_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatch: tuple[str, str | None] | None = None
    for url in urls:
        print(f"bmrsparse: downloading {url}", file=sys.stderr, flush=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                shutil.copyfileobj(response, out, _CHUNK)
            try:
                actual = digest(tmp, expected)
            except CorruptFileError as exc:
                mismatch = (url, None)
                failures.append(f"{url}: {exc.reason}")
                continue
            if actual != expected:
                mismatch = (url, actual)
                failures.append(f"{url}: {digest_name} {actual} instead of {expected}")
                continue
            os.chmod(tmp, 0o644)
            final = dest_dir / filename
            os.replace(tmp, final)
            print(f"bmrsparse: saved {final}", file=sys.stderr, flush=True)
            return final
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    if created and not any(dest_dir.iterdir()):
        dest_dir.rmdir()
    if mismatch is not None:
        raise ChecksumError(
            mismatch[0],
            expected,
            mismatch[1],
            what=digest_name,
            detail=f"Nothing was kept in {dest_dir}. Attempts: {'; '.join(failures)}.",
        )
    raise DatasetUnavailableError("; ".join(failures))


def locate(
    name: str,
    expected: Mapping[str, str],
    *,
    mirrors: Iterable[str],
    digest: Callable[[Path, str], str],
    digest_name: str,
    source_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, Path]:
    """Find (or download) every file named in ``expected``; return ``{filename: path}``.

    Local files are returned unverified (the readers verify them). A downloaded file is kept only after
    ``digest(path, expected_digest)`` equals its entry in ``expected``.

    Raises:
      DatasetUnavailableError: a file is missing and ``download`` is false, or every URL failed.
      ChecksumError: a download did not match its digest (nothing is kept).
    """
    mirrors = list(mirrors)
    searched = candidate_dirs(name, source_dir)
    found: dict[str, Path] = {}
    for filename in expected:
        for folder in searched:
            path = folder / filename
            if path.is_file():
                found[filename] = path
                break
    missing = [f for f in expected if f not in found]
    if not missing:
        return found
    urls = [m + f for f in missing for m in mirrors]
    if not download:
        raise DatasetUnavailableError(unavailable_message(name, missing, searched, urls) + " (download=False)")
    dest_dir = Path(source_dir).expanduser() if source_dir is not None else cache_dir(name)
    for filename in missing:
        try:
            found[filename] = _download(
                filename, [m + filename for m in mirrors], dest_dir, expected[filename], digest, digest_name
            )
        except DatasetUnavailableError as exc:
            raise DatasetUnavailableError(
                f"downloading failed ({exc}). " + unavailable_message(name, missing, searched, urls)
            ) from None
    return found
