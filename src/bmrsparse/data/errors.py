"""Errors raised while finding, verifying and reading dataset files."""

from __future__ import annotations

import pickle

__all__ = [
    "ChecksumError",
    "CorruptFileError",
    "DataError",
    "DatasetUnavailableError",
    "UnsafeArchiveError",
    "UnsafePickleError",
]

FIX_HINT = (
    "Delete it and run again to re-download it, or point source_dir (the workflow's config key `data_dir`, or "
    "the environment variable BMRSPARSE_DATA_DIR) at a folder holding a good copy."
)


class DataError(RuntimeError):
    """Base class of every error of :mod:`bmrsparse.data`."""


class ChecksumError(DataError):
    """A source file's MD5 digest is not the published one; nothing was written."""

    def __init__(self, path, expected: str, actual: str | None, *, what: str = "MD5", detail: str = ""):
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        message = f"checksum mismatch for {self.path}: expected {what} {expected}, got {actual}."
        if detail:
            message += f" {detail}"
        super().__init__(f"{message} The file is corrupted or not the original. {FIX_HINT}")


class CorruptFileError(ChecksumError):
    """A source file cannot be read to the end (truncated or damaged gzip/tar)."""

    def __init__(self, path, expected: str | None, reason: str):
        self.path = str(path)
        self.expected = expected
        self.actual = None
        self.reason = reason
        DataError.__init__(
            self,
            f"{self.path} is truncated or corrupted ({reason}); its checksum cannot match "
            f"(expected MD5 {expected}). {FIX_HINT}",
        )


class DatasetUnavailableError(DataError):
    """No local copy of a dataset was found and downloading was disabled or failed."""


class UnsafeArchiveError(DataError):
    """An archive holds a member that could escape its folder (absolute path, ``..``, link)."""


class UnsafePickleError(pickle.UnpicklingError, DataError):
    """A pickle asked for a global that the restricted unpickler does not admit."""
