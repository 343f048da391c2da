"""Where the command line gets its data: shipped datasets, CSV and netCDF files, UCR archives.

Every reader returns plain NumPy arrays plus the metadata the report prints,
and turns each way input can be wrong (missing file, unknown name, missing
column, non-numeric values) into a :class:`~sciamba._cli.CLIError` whose
message says what to type instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._cli import CLIError
from .estimators._data import future_times  # one calendar-aware implementation, shared

__all__ = [
    "CLASSIFY_DATASETS",
    "FORECAST_DATASETS",
    "Labelled",
    "Series",
    "future_times",
    "load_classify_dataset",
    "load_forecast_dataset",
    "read_csv_series",
    "read_netcdf_series",
    "read_ucr_pair",
]


@dataclass
class Series:
    """One univariate series, time last, as the forecast command uses it."""

    values: np.ndarray  # (T,) float64; NaN marks a missing value
    time: np.ndarray  # (T,) datetime64[ns], or float (e.g. days), or the integer step
    name: str
    description: str
    units: str = ""
    #: Horizon and lookback that suit this series when the user gives none.
    default_horizon: int | None = None
    default_lookback: int | None = None
    attrs: dict = field(default_factory=dict)


@dataclass
class Labelled:
    """A labelled set of series, split into train and test."""

    X_train: np.ndarray  # (n_train, [n_channels,] L)
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    description: str
    notes: list[str] = field(default_factory=list)


# name -> (loader keyword, default horizon, default lookback, blurb).
# Monthly sunspots: one solar cycle is ~132 months, so the default forecasts a
# cycle ahead from one cycle of context (longer contexts cost more and, measured
# on the held-back cycle, did not forecast better within the 2-minute budget).
FORECAST_DATASETS: dict[str, tuple[str, int, int, str]] = {
    "sunspots-monthly": ("monthly", 132, 132, "monthly mean sunspot numbers 1749-2009"),
    "sunspots-yearly": ("yearly", 11, 33, "yearly mean sunspot numbers 1700-2008"),
}

#: Decimation factor of the shipped heart beats in `sciamba classify`.
BEAT_DECIMATION = 3

CLASSIFY_DATASETS: dict[str, str] = {
    "mitdb100-beats": "MIT-BIH record 100 heart beats (2 leads), labels N/A/V",
}


def _unknown(kind: str, name: str, known) -> CLIError:
    return CLIError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(known))}")


def _first_data_array(obj, prefer: str | None = None):
    """A DataArray from what a loader returned (a Dataset: its ``prefer`` or first variable)."""
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        return obj
    if isinstance(obj, xr.Dataset):
        names = list(obj.data_vars)
        if prefer in names:
            return obj[prefer]
        if not names:
            raise CLIError("the dataset holds no data variables")
        return obj[names[0]]
    raise CLIError(f"expected an xarray object from the loader, got {type(obj).__name__}")


def _series_from_data_array(da, name: str, description: str, **kw) -> Series:
    if "time" not in da.dims:
        raise CLIError(f"{name}: has no 'time' dimension (dimensions: {', '.join(map(str, da.dims))})")
    if da.ndim != 1:
        others = {d: s for d, s in da.sizes.items() if d != "time"}
        raise CLIError(
            f"{name}: is not one series, it has the extra dimensions {others}; "
            "select one series first (e.g. with xarray's .sel) and save it"
        )
    try:
        values = np.asarray(da.values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{name}: values are not numeric ({da.dtype})") from exc
    time = np.asarray(da["time"].values) if "time" in da.coords else np.arange(values.shape[0])
    return Series(
        values=values,
        time=time,
        name=str(da.name or name),
        description=description,
        units=str(da.attrs.get("units", "")),
        attrs=dict(da.attrs),
        **kw,
    )


def load_forecast_dataset(name: str) -> Series:
    """The shipped dataset ``name`` (a key of :data:`FORECAST_DATASETS`) as a :class:`Series`."""
    if name not in FORECAST_DATASETS:
        raise _unknown("dataset", name, FORECAST_DATASETS)
    from sciamba.datasets import load_sunspots

    freq, horizon, lookback, blurb = FORECAST_DATASETS[name]
    da = _first_data_array(load_sunspots(freq=freq), prefer="sunspot_number")
    return _series_from_data_array(
        da, name, f"{name} ({blurb})", default_horizon=horizon, default_lookback=lookback
    )


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise CLIError(f"file not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory, expected a file")


_TIME_NAMES = ("time", "date", "datetime", "timestamp", "t")


def read_csv_series(path: str, column: str | None, time_column: str | None = None) -> Series:
    """Column ``column`` of a CSV file; the time axis from ``time_column`` or a column named like time."""
    _check_file(path)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {exc}") from exc
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if time_column is None:
        time_column = next((c for c in columns if c.strip().lower() in _TIME_NAMES), None)
    elif time_column not in columns:
        raise CLIError(f"time column {time_column!r} not found in {path}; columns: {', '.join(columns)}")
    if column is None:
        candidates = [c for c in columns if c != time_column]
        if len(candidates) != 1:
            raise CLIError(
                f"{path} has several columns ({', '.join(columns)}); choose one with --column NAME"
            )
        column = candidates[0]
    if column not in columns:
        raise CLIError(f"column {column!r} not found in {path}; columns: {', '.join(columns)}")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[column].notna().to_numpy()
    if bad.any():
        first = frame[column][bad].iloc[0]
        raise CLIError(
            f"column {column!r} of {path} has {int(bad.sum())} non-numeric value(s), e.g. {first!r}; "
            "leave missing values empty (they are read as NaN)"
        )
    if time_column is None:
        time = np.arange(values.shape[0])
    else:
        time = _parse_time(frame[time_column], f"column {time_column!r} of {path}")
    return Series(values=values, time=time, name=column, description=f"{path}, column {column!r}")


def _parse_time(col: pd.Series, where: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        time = col.to_numpy(dtype=np.float64)
    else:
        try:
            time = pd.to_datetime(col).to_numpy(dtype="datetime64[ns]")
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{where} is neither numeric nor dates: {exc}") from exc
    if len(time) > 1 and not np.all(time[1:] > time[:-1]):
        raise CLIError(f"{where} is not strictly increasing; sort the file by time")
    return time


def read_netcdf_series(path: str, variable: str | None) -> Series:
    """Variable ``variable`` (one series along ``time``) of a netCDF file, read with xarray."""
    import xarray as xr

    _check_file(path)
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {path} as netCDF: {_short(exc)}") from exc
    with ds:
        names = [str(v) for v in ds.data_vars]
        if variable is None:
            if len(names) != 1:
                raise CLIError(f"{path} has several variables ({', '.join(names)}); choose one with --variable NAME")
            variable = names[0]
        if variable not in names:
            raise CLIError(f"variable {variable!r} not found in {path}; variables: {', '.join(names) or 'none'}")
        da = ds[variable].load()
    return _series_from_data_array(da, variable, f"{path}, variable {variable!r}")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def load_classify_dataset(name: str, seed: int, test_size: float) -> Labelled:
    """A shipped labelled dataset, split into stratified train and test parts."""
    if name not in CLASSIFY_DATASETS:
        raise _unknown("dataset", name, CLASSIFY_DATASETS)
    from sciamba.datasets import load_mitdb_record100
    from sciamba.preprocessing import decimate

    X, y = load_mitdb_record100(beats=True, return_X_y=True)  # (2271, 2, 252) at 360 Hz
    # 360 -> 120 Hz with an anti-aliasing filter: the QRS complex and P wave lie
    # below 40 Hz, and a third of the steps makes training three times cheaper.
    X = np.asarray(decimate(X, BEAT_DECIMATION), dtype=np.float32)  # (2271, 2, 84)
    data = _stratified_split(X, np.asarray(y), f"{name} ({CLASSIFY_DATASETS[name]})", seed, test_size)
    data.notes.insert(0, f"beats decimated by {BEAT_DECIMATION}: 360 Hz -> {360 // BEAT_DECIMATION} Hz")
    return data


def _stratified_split(X, y, description: str, seed: int, test_size: float) -> Labelled:
    from sklearn.model_selection import train_test_split

    labels, counts = np.unique(y, return_counts=True)
    notes = []
    rare = labels[counts < 2]
    if rare.size:
        # A class seen once cannot be both trained on and tested: say so, and leave it out.
        keep = ~np.isin(y, rare)
        notes.append(
            "left out class(es) with a single example: "
            + ", ".join(f"{lab!s}" for lab in rare)
        )
        X, y = X[keep], y[keep]
    if np.unique(y).size < 2:
        raise CLIError(f"{description}: needs at least two classes with two or more examples each")
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    return Labelled(X_tr, y_tr, X_te, y_te, description, notes)


def read_ucr_pair(path: str) -> Labelled:
    """The train and test splits of a UCR dataset (a folder, or one of its files)."""
    if not os.path.exists(path):
        raise CLIError(f"UCR path not found: {path}")
    from sciamba.datasets import read_ucr

    if os.path.isfile(path):
        # NAME_TRAIN.ext and NAME_TEST.ext sit side by side: either one names the pair.
        stem, ext = os.path.splitext(path)
        if not stem.upper().endswith(("_TRAIN", "_TEST")):
            raise CLIError(
                f"{path} is not a UCR NAME_TRAIN/NAME_TEST file; give the dataset's folder "
                "or its NAME_TRAIN file"
            )
        base = stem[: stem.upper().rfind("_")]
        train_file, test_file = base + "_TRAIN" + ext, base + "_TEST" + ext
        for f in (train_file, test_file):
            if not os.path.isfile(f):
                raise CLIError(f"UCR file not found: {f} (both the _TRAIN and _TEST files are needed)")
        X_tr, y_tr = read_ucr(train_file)
        X_te, y_te = read_ucr(test_file)
    else:
        X_tr, y_tr = read_ucr(path, split="train")
        X_te, y_te = read_ucr(path, split="test")
    if y_tr is None or y_te is None:
        raise CLIError(f"{path} has no class labels to learn from")
    return Labelled(
        np.asarray(X_tr, dtype=np.float32),
        np.asarray(y_tr),
        np.asarray(X_te, dtype=np.float32),
        np.asarray(y_te),
        f"UCR {os.path.basename(os.path.normpath(path))} (default train/test split)",
    )
