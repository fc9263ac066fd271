"""Where dataset files come from: a local folder, a known local copy, the download cache, or the web (via pooch).

Lookup order for each file (the first folder that holds it wins):

1. ``source_dir`` (the argument; the workflow passes its config key ``data_dir``), as ``<dir>/<subfolder>``
   for each of the dataset's declared ``subfolders``, then ``<dir>`` itself;
2. the environment variable ``BMRSPARSE_DATA_DIR``, in the same two ways;
3. known local copies (the dataset's declared ``local_copies``, e.g. Debian's ``/usr/share/datasets/fashion-mnist``);
4. the download cache ``$XDG_CACHE_HOME/bmrsparse/<dataset>`` (default ``~/.cache/bmrsparse/<dataset>``);
5. the canonical URLs, if downloading is allowed. :mod:`pooch` downloads each file into ``source_dir`` (when
   given) or the cache folder, checks it against its published MD5 before it appears under its name (a file
   that does not match is deleted), retries a failed download, and shows a progress bar on a terminal.

Files found locally are verified by the readers when they are read; nothing is trusted unverified.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pooch
import requests

from ._registry import DATASETS
from .errors import ChecksumError, CorruptFileError, DatasetUnavailableError

__all__ = [
    "DATA_DIR_ENV",
    "cache_dir",
    "candidate_dirs",
    "download",
    "locate",
    "md5_file",
    "read_gzip",
]

DATA_DIR_ENV = "BMRSPARSE_DATA_DIR"

#: Seconds pooch waits for a server before giving up on a mirror.
DOWNLOAD_TIMEOUT_S = 60.0
#: Further attempts pooch makes per mirror after a failed or non-matching download.
RETRIES = 2


def md5_file(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file's bytes."""
    return pooch.file_hash(str(path), alg="md5")


def read_gzip(path: str | os.PathLike, expected: str | None = None) -> bytes:
    """The decompressed content of a gzip file; a truncated or damaged file raises :class:`CorruptFileError`."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptFileError(path, expected, f"gzip: {exc}") from exc


def cache_dir(name: str) -> Path:
    """Download cache of dataset ``name``: ``$XDG_CACHE_HOME/bmrsparse/<name>`` or ``~/.cache/bmrsparse/<name>``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bmrsparse" / name


def candidate_dirs(name: str, source_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in order (see the module docstring)."""
    info = DATASETS.get(name)
    subfolders, local_copies = (info.subfolders, info.local_copies) if info is not None else ((name,), ())
    dirs: list[Path] = []
    for base in (source_dir, os.environ.get(DATA_DIR_ENV) or None):
        if base is not None:
            base = Path(base).expanduser()
            dirs.extend(base / sub for sub in subfolders)
            dirs.append(base)
    dirs.extend(Path(p) for p in local_copies)
    dirs.append(cache_dir(name))
    return list(dict.fromkeys(dirs))


def unavailable_message(name: str, missing: Iterable[str], searched: Iterable[Path], urls: Iterable[str]) -> str:
    missing = list(missing)
    info = DATASETS.get(name)
    sub = info.subfolders[0] if info is not None else name
    return (
        f"dataset {name!r} is not available: missing file(s) {', '.join(missing)}. "
        f"Looked in: {', '.join(str(d) for d in searched)}. "
        f"To use a local copy, put {' and '.join(missing)} in a folder and pass it as source_dir=<folder> to "
        f"bmrsparse.data.prepare_dataset (in the workflow: the config key `data_dir`, e.g. "
        f"`--config data_dir=/path/to/folder`), or set the environment variable {DATA_DIR_ENV}=<folder> "
        f"(files directly in it or in its subfolder {sub}/). "
        f"Otherwise allow downloading (download=True) from: {', '.join(urls)}."
    )


def download(filename: str, mirrors: Iterable[str], dest_dir: str | os.PathLike, md5: str) -> Path:
    """Fetch ``filename`` with pooch from the first mirror that serves bytes of MD5 ``md5``; return its path.

    Each mirror is a base URL ending in ``/``; pooch retries it :data:`RETRIES` times. The file appears as
    ``dest_dir/filename`` only once it matches; nothing else is left in ``dest_dir`` (removed if it was created
    here and stayed empty).

    Raises:
      ChecksumError: a mirror served bytes of another digest (and no mirror served matching ones).
      DatasetUnavailableError: no mirror could be reached.
    """
    dest = Path(dest_dir)
    created = not dest.exists()
    bar = sys.stderr.isatty()
    failures: list[str] = []
    mismatch: tuple[str, str | None] | None = None
    for mirror in mirrors:
        url = mirror + filename
        fetcher = pooch.create(path=dest, base_url=mirror, registry={filename: f"md5:{md5}"},
                               retry_if_failed=RETRIES)
        try:
            path = fetcher.fetch(filename, progressbar=bar,
                                 downloader=pooch.HTTPDownloader(progressbar=bar, timeout=DOWNLOAD_TIMEOUT_S))
            print(f"bmrsparse: saved {path} (from {url}, MD5 verified)", file=sys.stderr, flush=True)
            return Path(path)
        except ValueError as exc:  # pooch: the downloaded bytes do not match the known hash (nothing kept)
            got = re.search(r"got ([0-9a-f]{32})", str(exc))
            mismatch = (url, got.group(1) if got else None)
            failures.append(f"{url}: {exc}")
        except (requests.exceptions.RequestException, OSError) as exc:
            failures.append(f"{url}: {exc}")
    if created and dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if mismatch is not None:
        raise ChecksumError(mismatch[0], md5, mismatch[1],
                            detail=f"Nothing was kept in {dest}. Attempts: {'; '.join(failures)}.")
    raise DatasetUnavailableError("; ".join(failures))


def locate(
    name: str,
    expected: Mapping[str, str | None],
    *,
    mirrors: Iterable[str],
    download_md5: Mapping[str, str],
    source_dir: str | os.PathLike | None = None,
    download_ok: bool = True,
) -> dict[str, Path]:
    """Find (or download) every file named in ``expected``; return ``{filename: path}``.

    Local files are returned unverified (the readers verify them against ``expected``). A missing file is
    downloaded with :func:`download`, checked against ``download_md5[filename]`` (the MD5 of the published file),
    into ``source_dir`` when given, else the cache folder.

    Raises:
      DatasetUnavailableError: a file is missing and ``download_ok`` is false, or no mirror could be reached.
      ChecksumError: a download did not match its digest (nothing is kept).
    """
    mirrors = list(mirrors)
    searched = candidate_dirs(name, source_dir)
    found: dict[str, Path] = {}
    for filename in expected:
        for folder in searched:
            if (folder / filename).is_file():
                found[filename] = folder / filename
                break
    missing = [f for f in expected if f not in found]
    if not missing:
        return found
    urls = [m + f for f in missing for m in mirrors]
    if not download_ok:
        raise DatasetUnavailableError(unavailable_message(name, missing, searched, urls) + " (download=False)")
    dest_dir = Path(source_dir).expanduser() if source_dir is not None else cache_dir(name)
    for filename in missing:
        try:
            found[filename] = download(filename, mirrors, dest_dir, download_md5[filename])
        except DatasetUnavailableError as exc:
            raise DatasetUnavailableError(
                f"downloading failed ({exc}). " + unavailable_message(name, missing, searched, urls)
            ) from None
    return found
