"""Reader for the UCR/UEA time series classification archive formats.

Three formats are in use:

* ``.tsv`` (UCR 2018): one series per line, tab-separated, class label first;
  unequal-length sets are padded with ``NaN``.
* ``.txt`` (UCR 2015): the same layout separated by whitespace or commas.
* ``.ts`` (sktime/aeon, UEA multivariate archive): ``@``-headers, then one
  case per line with the channels separated by ``:`` and values by ``,``,
  missing values as ``?``, and the label last.

The UCR archive is licensed for research use only, so sciamba ships none of
it: read the files you have, or download them with :func:`fetch_ucr`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_ucr"]

_SUFFIXES = (".ts", ".tsv", ".txt")


def _coerce_labels(labels: list[str]) -> np.ndarray:
    """Integer labels when every label is an integral number, strings otherwise."""
    try:
        values = np.array([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        return np.asarray(labels, dtype=str)
    if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return np.asarray(labels, dtype=str)


def _pad(series: list[np.ndarray]) -> np.ndarray:
    """Stack ``(n_channels, n_i)`` arrays into one array, NaN-padding at the end."""
    n_channels = series[0].shape[0]
    length = max(s.shape[1] for s in series)
    X = np.full((len(series), n_channels, length), np.nan)
    for i, s in enumerate(series):
        X[i, :, : s.shape[1]] = s
    return X


def _read_delimited(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".tsv":
        delimiter = "\t"
    else:
        # UCR 2015 .txt files are whitespace-separated, a few are comma-separated.
        first = next((line for line in text.splitlines() if line.strip()), "")
        delimiter = "," if "," in first else None
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no series")
    labels, series = [], []
    for lineno, line in enumerate(rows, 1):
        fields = line.split(delimiter) if delimiter else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) < 2:
            raise ValueError(f"{path}, line {lineno}: need a label and at least one value")
        labels.append(fields[0])
        try:
            values = np.array([float(f) if f else np.nan for f in fields[1:]])
        except ValueError as exc:
            raise ValueError(f"{path}, line {lineno}: non-numeric value ({exc})") from None
        series.append(values[None, :])
    X = _pad(series)
    # The 2018 archive pads unequal lengths with NaN already: trim all-NaN tail columns.
    keep = ~np.all(np.isnan(X), axis=(0, 1))
    if keep.any():
        X = X[:, :, : np.flatnonzero(keep)[-1] + 1]
    return X, _coerce_labels(labels)


def _parse_bool(path: Path, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{path}: header @{key} must be true or false, got {value!r}")
    return v == "true"


def _read_ts(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    header: dict[str, str] = {}
    data_lines: list[str] = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if in_data:
                data_lines.append(line)
            elif line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                else:
                    header[key] = value.strip()
            else:
                raise ValueError(f"{path}: data line before the @data header: {line[:40]!r}")
    if not in_data:
        raise ValueError(f"{path}: no @data section; is this a .ts file?")
    if _parse_bool(path, "timestamps", header.get("timestamps", "false")):
        raise ValueError(
            f"{path}: time-stamped .ts data (@timeStamps true) is not supported; "
            "convert it to the plain comma-separated form"
        )
    class_spec = header.get("classlabel", "false").split()
    has_class = _parse_bool(path, "classLabel", class_spec[0]) if class_spec else False
    class_set = set(class_spec[1:])
    has_target = _parse_bool(path, "targetlabel", header.get("targetlabel", "false"))
    has_label = has_class or has_target
    if not data_lines:
        raise ValueError(f"{path}: the @data section is empty")

    labels, series = [], []
    n_channels = None
    for lineno, line in enumerate(data_lines, 1):
        fields = line.split(":")
        if has_label:
            labels.append(fields.pop().strip())
        if n_channels is None:
            n_channels = len(fields)
        elif len(fields) != n_channels:
            raise ValueError(
                f"{path}, case {lineno}: {len(fields)} channels, expected {n_channels}"
            )
        channels = []
        for f in fields:
            values = [v.strip() for v in f.split(",")]
            try:
                channels.append(np.array([np.nan if v == "?" else float(v) for v in values]))
            except ValueError as exc:
                raise ValueError(f"{path}, case {lineno}: non-numeric value ({exc})") from None
        length = max(len(c) for c in channels)
        case = np.full((len(channels), length), np.nan)
        for j, c in enumerate(channels):
            case[j, : len(c)] = c
        series.append(case)
    if "dimensions" in header and int(header["dimensions"]) != n_channels:
        raise ValueError(
            f"{path}: @dimensions says {header['dimensions']} but the cases have "
            f"{n_channels} channels"
        )
    X = _pad(series)
    if not has_label:
        return X, None
    if has_target:
        return X, np.array([float(v) for v in labels])
    unknown = sorted(set(labels) - class_set) if class_set else []
    if unknown:
        raise ValueError(f"{path}: labels {unknown} are not in @classLabel {sorted(class_set)}")
    return X, _coerce_labels(labels)


def _resolve(path_or_name: str | os.PathLike, split: str | None) -> Path:
    path = Path(path_or_name).expanduser()
    if path.is_file():
        stem = path.stem.upper()
        if split is not None and stem.endswith(("_TRAIN", "_TEST")):
            if not stem.endswith("_" + split.upper()):
                raise ValueError(
                    f"split={split!r} contradicts the file name {path.name!r}; "
                    "pass the directory to choose a split, or omit split"
                )
        return path
    if split is None:
        split = "train"
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if path.is_dir():
        directory, name = path, path.name
    else:
        # Reading never creates the data home as a side effect.
        from ._fetch import data_home_path

        name = os.fspath(path_or_name)
        directory = data_home_path() / "ucr" / name
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{name!r} is neither a file nor a directory, and no downloaded UCR set of "
                f"that name is in {directory.parent}; download it with "
                f"sciamba.datasets.fetch_ucr({name!r}) or pass the path of a "
                ".ts/.tsv/.txt file"
            )
    for suffix in _SUFFIXES:
        candidate = directory / f"{name}_{split.upper()}{suffix}"
        if candidate.is_file():
            return candidate
    matches = sorted(p for s in _SUFFIXES for p in directory.glob(f"*_{split.upper()}{s}"))
    if len(matches) == 1:
        return matches[0]
    raise FileNotFoundError(
        f"no unique *_{split.upper()}{{.ts,.tsv,.txt}} file in {directory} "
        f"(found {[m.name for m in matches]})"
    )


def read_ucr(
    path_or_name: str | os.PathLike, split: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a UCR/UEA archive dataset in ``.tsv``, ``.txt`` or ``.ts`` format.

    Parameters
    ----------
    path_or_name : str or path-like
        One of: a ``.ts``/``.tsv``/``.txt`` file; a directory holding
        ``<Name>_TRAIN.<ext>`` and ``<Name>_TEST.<ext>``; or the name of a
        set downloaded with :func:`fetch_ucr` (looked up in the data home).
    split : {"train", "test"}, optional
        Which split to read from a directory or name (default ``"train"``).
        With a file it is optional, and must agree with a ``_TRAIN``/``_TEST``
        file name.

    Returns
    -------
    X : ndarray of float64, shape (n_cases, n_channels, n_timepoints)
        Always 3-D (``n_channels == 1`` for univariate sets), time last.
        Unequal-length cases are padded with ``NaN`` at the end to the
        longest case; missing values (``?`` in ``.ts``) are ``NaN`` too.
    y : ndarray, shape (n_cases,), or None
        Class labels as int64 when every label is an integer (UCR files store
        ``1.0000000e+00``), otherwise strings; float64 for regression
        (``@targetLabel true``); ``None`` when the ``.ts`` file has no labels.

    Raises
    ------
    FileNotFoundError
        If nothing matches ``path_or_name``.
    ValueError
        For malformed files (inconsistent channel counts, non-numeric values,
        labels outside ``@classLabel``, time-stamped ``.ts`` data).

    Notes
    -----
    The UCR archive is free for research use only and is not shipped with
    sciamba; cite Dau et al. (2019) [1]_ when you use it.

    References
    ----------
    .. [1] Dau HA, Bagnall A, Kamgar K, et al. The UCR time series archive.
       IEEE/CAA J. Autom. Sinica 6(6):1293-1305 (2019).
    .. [2] Bagnall A et al. The UEA multivariate time series classification
       archive, 2018. arXiv:1811.00075.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sciamba.datasets import read_ucr
    >>> ts = '''@problemName Toy
    ... @univariate false
    ... @dimensions 2
    ... @equalLength false
    ... @classLabel true a b
    ... @data
    ... 1,2,3:4,5,6:a
    ... 7,8:9,?:b
    ... '''
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "Toy_TRAIN.ts"
    >>> _ = path.write_text(ts)
    >>> X, y = read_ucr(path)
    >>> X.shape, y.tolist()
    ((2, 2, 3), ['a', 'b'])
    >>> X[1]
    array([[ 7.,  8., nan],
           [ 9., nan, nan]])
    """
    if split is not None and split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = _resolve(path_or_name, split)
    if path.suffix == ".ts":
        return _read_ts(path)
    if path.suffix in (".tsv", ".txt"):
        return _read_delimited(path)
    raise ValueError(f"{path}: unknown UCR format {path.suffix!r}; expected .ts, .tsv or .txt")
