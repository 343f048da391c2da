"""Download-once fetchers for the UCR/UEA archive and PhysioNet records.

Files go into a data home (``$SCIAMBA_DATA`` or ``~/sciamba_data``), are
written to ``<name>.part`` while downloading, checked (length and SHA-256),
and only then renamed into place, so an interrupted or corrupted download
never poses as a cached file. Nothing here runs at import time.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ._base import ChecksumError, sha256sum
from ._ucr import read_ucr

__all__ = ["get_data_home", "fetch_ucr", "fetch_physionet", "DownloadError"]

UCR_BASE_URL = "https://timeseriesclassification.com/aeon-toolkit/"
PHYSIONET_BASE_URL = "https://physionet.org/files/"
_CHUNK = 1 << 16


class DownloadError(ConnectionError):
    """A download failed: no connection, an HTTP error, or a truncated transfer.

    Examples
    --------
    >>> from sciamba.datasets import DownloadError
    >>> issubclass(DownloadError, ConnectionError)
    True
    """


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder where fetched data are cached, created if needed.

    Parameters
    ----------
    data_home : str or path-like, optional
        Explicit folder. Default: the ``SCIAMBA_DATA`` environment variable,
        else ``~/sciamba_data``.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sciamba.datasets import get_data_home
    >>> folder = tempfile.mkdtemp()
    >>> get_data_home(folder) == Path(folder)
    True
    """
    path = data_home_path(data_home)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_home_path(data_home: str | os.PathLike | None = None) -> Path:
    """The data home of :func:`get_data_home`, without creating it."""
    if data_home is None:
        data_home = os.environ.get("SCIAMBA_DATA", os.path.join("~", "sciamba_data"))
    return Path(data_home).expanduser()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    A cached ``dest`` is reused when it matches ``sha256`` (or when no
    digest is given); a cached file with the wrong digest is downloaded
    again. The new file is streamed to ``dest.part`` with a tqdm progress
    bar, its length is compared with ``Content-Length`` and its digest with
    ``sha256``; on any failure the partial file is deleted.
    """
    if dest.is_file():
        if sha256 is None or sha256sum(dest) == sha256.lower():
            return dest
        dest.unlink()  # a corrupted cache entry: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "sciamba-datasets"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            with (
                open(part, "wb") as fh,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar,
            ):
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} was truncated: the connection closed after "
            f"{received + len(exc.partial)} bytes; the partial file was deleted, try again"
        ) from exc
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not download {url} ({reason}). Check the internet connection or proxy; "
            f"to work offline, place the file at {dest} yourself."
        ) from exc
    if total is not None and received != total:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} was truncated: got {received} of {total} bytes; "
            "the partial file was deleted, try again"
        )
    if sha256 is not None:
        actual = sha256sum(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "the downloaded file was deleted"
            )
    os.replace(part, dest)
    return dest


# -- UCR/UEA -----------------------------------------------------------------

_UCR_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_UCR_SUFFIXES = (".ts", ".tsv", ".txt")


def _recorded(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.is_file() else {}


def fetch_ucr(
    name: str,
    split: str = "train",
    *,
    data_home: str | os.PathLike | None = None,
    sha256: str | None = None,
    base_url: str = UCR_BASE_URL,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Download a UCR/UEA archive dataset once, then read it from the cache.

    The archive's zip ``<base_url><name>.zip`` is saved in
    ``<data_home>/ucr/``, checked, and its ``<name>_TRAIN``/``<name>_TEST``
    files are extracted into ``<data_home>/ucr/<name>/``, where
    :func:`read_ucr` also finds them by name.

    Parameters
    ----------
    name : str
        Dataset name as in the archive, e.g. ``"ECG200"``, ``"GunPoint"``.
    split : {"train", "test"}, default "train"
    data_home : str or path-like, optional
        Cache folder (see :func:`get_data_home`).
    sha256 : str, optional
        Expected SHA-256 of the zip. The archive publishes no digests, so
        without it the digest of the first download is recorded in
        ``<data_home>/ucr/checksums.json`` and every later use of the cached
        zip is verified against it; the zip's own CRCs are always checked.
    base_url : str
        Mirror of the archive's ``aeon-toolkit/`` folder.
    progress : bool, default True
        Show a tqdm progress bar while downloading.

    Returns
    -------
    X, y
        As :func:`read_ucr`: ``X`` float64 ``(n_cases, n_channels,
        n_timepoints)``, ``y`` the labels.

    Raises
    ------
    DownloadError
        When offline, on an HTTP error (e.g. an unknown name) or a truncated
        download; the partial file is deleted.
    ChecksumError
        When the zip does not match ``sha256`` or the recorded digest (the
        file is deleted).

    Notes
    -----
    The UCR/UEA archives are free for research use only; cite Dau et al.
    (2019) and Bagnall et al. (2018) (see :func:`read_ucr`).

    Examples
    --------
    >>> from sciamba.datasets import fetch_ucr
    >>> X_train, y_train = fetch_ucr("GunPoint")  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (50, 1, 150)
    """
    if not isinstance(name, str) or not _UCR_NAME.match(name):
        raise ValueError(f"name must be a UCR/UEA dataset name such as 'ECG200', got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = get_data_home(data_home) / "ucr"
    folder = root / name
    wanted = [folder / f"{name}_{split.upper()}{s}" for s in _UCR_SUFFIXES]
    if not any(p.is_file() for p in wanted):
        ledger_path = root / "checksums.json"
        ledger = _recorded(ledger_path)
        expected = sha256 or ledger.get(f"{name}.zip")
        archive = download(
            f"{base_url.rstrip('/')}/{name}.zip",
            root / f"{name}.zip",
            sha256=expected,
            progress=progress,
        )
        if expected is None:
            ledger[f"{name}.zip"] = sha256sum(archive)
            ledger_path.write_text(json.dumps(ledger, indent=2, sort_keys=True) + "\n")
        _extract_ucr(archive, folder, name)
    return read_ucr(folder, split=split)


def _extract_ucr(archive: Path, folder: Path, name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"CRC error in member {bad}")
            members = [
                m
                for m in zf.infolist()
                if re.search(r"_(TRAIN|TEST)\.(ts|tsv|txt)$", m.filename, re.IGNORECASE)
            ]
            if not members:
                raise zipfile.BadZipFile("no *_TRAIN/*_TEST .ts/.tsv/.txt members")
            folder.mkdir(parents=True, exist_ok=True)
            for m in members:
                # Flatten paths: never trust member names to stay inside `folder`.
                target = folder / Path(m.filename).name
                with zf.open(m) as src, open(target, "wb") as dst:
                    dst.write(src.read())
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise ChecksumError(
            f"{archive} is not a valid UCR archive for {name!r} ({exc}); it was deleted"
        ) from exc


# -- PhysioNet ---------------------------------------------------------------

_PN_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _check_relpath(kind: str, value: str) -> None:
    parts = value.split("/")
    if not value or any(p in ("", ".", "..") or not _PN_SEGMENT.match(p) for p in parts):
        raise ValueError(f"{kind} must be a relative PhysioNet path like '100', got {value!r}")


def _parse_manifest(path: Path) -> dict[str, str]:
    digests = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
            digests[fields[1].lstrip("*")] = fields[0].lower()
    if not digests:
        raise ChecksumError(f"{path} holds no SHA-256 digests; delete it and try again")
    return digests


def _header_files(header: Path) -> list[str]:
    """Signal file names listed in a single-segment WFDB header."""
    lines = [ln for ln in header.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    record_line = lines[0].split()
    if "/" in record_line[0]:
        raise ValueError(f"{header} is a multi-segment record; fetch its segments one by one")
    n_signals = int(record_line[1])
    files = [ln.split()[0] for ln in lines[1 : 1 + n_signals]]
    return list(dict.fromkeys(f for f in files if f != "~"))


def fetch_physionet(
    record: str,
    database: str = "mitdb",
    *,
    version: str = "1.0.0",
    annotators: tuple[str, ...] = ("atr",),
    data_home: str | os.PathLike | None = None,
    base_url: str = PHYSIONET_BASE_URL,
    progress: bool = True,
) -> Path:
    """Download a PhysioNet WFDB record once, verified against the database manifest.

    Fetches ``SHA256SUMS.txt`` of the database version, then the record's
    header, every signal file the header names and the requested annotation
    files, each checked against the manifest's SHA-256. Files go to
    ``<data_home>/physionet/<database>/<version>/`` and are reused from there.

    Parameters
    ----------
    record : str
        Record name within the database, e.g. ``"100"`` (may contain ``/``).
    database : str, default "mitdb"
        PhysioNet project slug (``"mitdb"``, ``"nsrdb"``, ``"afdb"``, ...).
    version : str, default "1.0.0"
        Project version.
    annotators : tuple of str, default ("atr",)
        Annotation file extensions to fetch; those absent from the manifest
        are skipped (many databases have no reference annotations).
    data_home : str or path-like, optional
        Cache folder (see :func:`get_data_home`).
    base_url : str
        Mirror of ``https://physionet.org/files/``.
    progress : bool, default True
        Show a tqdm progress bar while downloading.

    Returns
    -------
    Path
        The local record path without extension, ready for :func:`read_wfdb`.

    Raises
    ------
    DownloadError
        When offline, on an HTTP error or a truncated download.
    ChecksumError
        When a file does not match the manifest (the file is deleted) or is
        not listed in it.

    Notes
    -----
    PhysioNet data come under the licence of each project (``mitdb``:
    ODC-By 1.0); cite the database and Goldberger et al. (2000).

    Examples
    --------
    >>> from sciamba.datasets import fetch_physionet, read_wfdb
    >>> ds = read_wfdb(fetch_physionet("101", "mitdb"))  # doctest: +SKIP
    """
    _check_relpath("record", record)
    _check_relpath("database", database)
    _check_relpath("version", version)
    for ann in annotators:
        if not re.fullmatch(r"[A-Za-z0-9_]+", ann):
            raise ValueError(f"annotator must be a file extension like 'atr', got {ann!r}")
    root = get_data_home(data_home) / "physionet" / database / version
    url = f"{base_url.rstrip('/')}/{database}/{version}/"
    manifest = _parse_manifest(
        download(url + "SHA256SUMS.txt", root / "SHA256SUMS.txt", progress=False)
    )

    def get(relpath: str) -> Path:
        if relpath not in manifest:
            raise ChecksumError(
                f"{relpath} is not listed in {url}SHA256SUMS.txt; is the record name right?"
            )
        return download(url + relpath, root / relpath, sha256=manifest[relpath], progress=progress)

    header = get(f"{record}.hea")
    prefix = record.rsplit("/", 1)[0] + "/" if "/" in record else ""
    for name in _header_files(header):
        get(prefix + name)
    for ann in annotators:
        if f"{record}.{ann}" in manifest:
            get(f"{record}.{ann}")
    return root / record
