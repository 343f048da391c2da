"""Locating and verifying the data files that ship with the package.

Every shipped file has its SHA-256 digest recorded in
``datasets/data/checksums.json``; :func:`shipped_path` recomputes it before a
loader reads the file, so a corrupted or hand-edited installation fails loudly
instead of returning silently wrong data.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from ._registry import REGISTRY

DATA_DIR = Path(__file__).resolve().parent / "data"
CHECKSUM_FILE = "checksums.json"


class ChecksumError(OSError):
    """A file's SHA-256 digest differs from the recorded one (or cannot be checked).

    Raised by the loaders for a corrupted installation and by the fetchers
    for a corrupted or tampered download (which is deleted).

    Examples
    --------
    >>> from sciamba.datasets import ChecksumError
    >>> issubclass(ChecksumError, OSError)
    True
    """


def sha256sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in chunks so large files stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _recorded_checksums() -> dict[str, str]:
    with open(DATA_DIR / CHECKSUM_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def verify_file(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has SHA-256 ``expected``."""
    actual = sha256sum(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {os.fspath(path)!r}: expected sha256 {expected}, "
            f"got {actual}. The file is corrupted or was modified; reinstall "
            "sciamba (or download it again)."
        )


def shipped_path(key: str) -> Path:
    """Path of the shipped file of dataset ``key``, after verifying its checksum."""
    entry = REGISTRY[key]
    path = DATA_DIR / entry.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"the data file {entry.filename!r} of dataset {key!r} is missing from "
            f"{DATA_DIR}; the installation is incomplete, reinstall sciamba."
        )
    checksums = _recorded_checksums()
    if entry.filename not in checksums:
        raise ChecksumError(f"no checksum recorded for {entry.filename!r} in {CHECKSUM_FILE}")
    verify_file(path, checksums[entry.filename])
    return path


def provenance_attrs(key: str) -> dict[str, str]:
    """``source``, ``license`` and ``citation`` attrs of dataset ``key``."""
    entry = REGISTRY[key]
    attrs = {
        "title": entry.title,
        "source": entry.source,
        "license": entry.license,
        "citation": entry.citation,
    }
    if entry.notes:
        attrs["notes"] = entry.notes
    return attrs
