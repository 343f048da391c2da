"""Input checks shared by every preprocessing function and transformer.

Layout rule of the whole package: time is the last axis, as in
``scipy.signal``. Estimators take ``(n_series, n_times)`` or
``(n_series, n_channels, n_times)``; an :class:`xarray.DataArray` has its
``time`` dimension moved last before the numbers reach the math.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

__all__: list[str] = []

TIME_DIM = "time"
FREQ_DIM = "frequency"


def _xarray_dataarray_type():
    # A DataArray can only exist if xarray was imported already, so looking in
    # sys.modules keeps `import sciamba.preprocessing` free of the xarray import.
    xr = sys.modules.get("xarray")
    return None if xr is None else xr.DataArray


def is_dataarray(X: Any) -> bool:
    da_type = _xarray_dataarray_type()
    return da_type is not None and isinstance(X, da_type)


@dataclass
class DataArrayInfo:
    """What is needed to rebuild a DataArray around a transformed array."""

    da: Any  # the input, transposed so that ``time`` is last
    times: np.ndarray | None  # values of the ``time`` coordinate, if any
    attrs: dict = field(default_factory=dict)


def unwrap(X: Any) -> tuple[Any, DataArrayInfo | None]:
    """Return ``(array_like, info)``; ``info`` is None unless X is a DataArray."""
    if not is_dataarray(X):
        return X, None
    if TIME_DIM not in X.dims:
        raise ValueError(
            f"the DataArray has no {TIME_DIM!r} dimension (dims are {X.dims}); "
            f"rename the time dimension, e.g. da.rename({{'t': {TIME_DIM!r}}})"
        )
    if X.ndim not in (2, 3):
        raise ValueError(
            f"the DataArray must have 2 or 3 dimensions, (series, [channel,] {TIME_DIM}); "
            f"got dims {X.dims}. For one series use da.expand_dims('series')"
        )
    da = X.transpose(..., TIME_DIM)
    times = np.asarray(da[TIME_DIM].values) if TIME_DIM in da.coords else None
    return da.values, DataArrayInfo(da=da, times=times, attrs=dict(da.attrs))


def _ndim(X: Any) -> int:
    # Via .shape when there is one: array-likes may refuse numpy functions.
    if hasattr(X, "shape"):
        return len(X.shape)
    return np.asarray(X).ndim if hasattr(X, "__array__") else np.ndim(X)


def _shape_message(nd: int) -> str:
    return (
        "X must be 2-D (n_series, n_times) or 3-D (n_series, n_channels, n_times), "
        f"time last; got an array with {nd} dimension(s)"
        + (". Reshape your data: for a single series use X.reshape(1, -1)" if nd == 1 else "")
    )


def check_series(
    estimator: Any,
    X: Any,
    *,
    reset: bool,
    allow_nan: bool = False,
    validate: bool = True,
) -> np.ndarray:
    """Validate ``X`` as a float64 batch of series, time last.

    With ``validate=True`` this goes through :func:`sklearn.utils.validation.validate_data`,
    so ``n_features_in_`` is ``X.shape[1]`` as everywhere in scikit-learn: the number
    of time steps for 2-D input, of channels for 3-D input.
    """
    nd = _ndim(X)
    if nd not in (2, 3):
        raise ValueError(_shape_message(nd))
    kwargs = dict(
        dtype=np.float64,
        allow_nd=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        ensure_all_finite=False,
    )
    if validate:
        x = validate_data(estimator, X, reset=reset, **kwargs)
    else:
        from sklearn.utils import check_array

        x = check_array(X, **kwargs)
    if 0 in x.shape:
        raise ValueError(
            f"X has shape {x.shape}: every dimension (series, channels, time) must be non-empty"
        )
    check_finite(x, allow_nan=allow_nan, name=type(estimator).__name__)
    return x


def check_finite(x: np.ndarray, *, allow_nan: bool, name: str) -> None:
    """Reject inf always and NaN unless allowed, saying what to do instead."""
    if allow_nan:
        if np.isinf(x).any():
            raise ValueError(f"{name}: X contains inf; only NaN marks a missing sample")
        return
    if not np.isfinite(x).all():
        raise ValueError(
            f"{name}: X contains NaN or inf. Missing samples cannot be filtered or "
            "transformed; fill them first with sciamba.preprocessing.FillMissing or "
            "resample onto a regular grid with sciamba.preprocessing.Interpolate"
        )


def as_float_series(x: Any, *, axis: int, name: str, allow_nan: bool = False) -> np.ndarray:
    """Functional-API check: float64 array with ``axis`` moved last."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        raise ValueError(f"{name}: complex input is not supported; pass the real part")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: x must have at least one dimension")
    x = np.moveaxis(x.astype(np.float64, copy=False), axis, -1)
    if x.shape[-1] == 0:
        raise ValueError(f"{name}: x has no samples along axis {axis}")
    check_finite(x, allow_nan=allow_nan, name=name)
    return x


def check_fs_matches(fs: float, info: DataArrayInfo | None, name: str) -> None:
    """Refuse a DataArray whose ``fs`` attribute contradicts the estimator's ``fs``.

    Filtering a 100 Hz signal as if it were 360 Hz gives silently wrong output,
    so a disagreement is an error rather than something to guess about.
    """
    if info is None or "fs" not in info.attrs:
        return
    da_fs = float(info.attrs["fs"])
    if not np.isclose(da_fs, fs, rtol=1e-9, atol=0.0):
        raise ValueError(
            f"{name} has fs={fs:g} but the DataArray says it is sampled at "
            f"attrs['fs']={da_fs:g}; set fs={da_fs:g}"
        )


def times_as_float(times: np.ndarray) -> tuple[np.ndarray, Any]:
    """Numeric view of a time coordinate and a function mapping numbers back.

    ``datetime64``/``timedelta64`` coordinates become seconds since their first
    value, so steps and frequencies are in seconds and hertz.
    """
    times = np.asarray(times)
    if times.dtype.kind in "mM":
        origin = times.reshape(-1)[0]
        seconds = (times - origin) / np.timedelta64(1, "s")

        def back(values: np.ndarray) -> np.ndarray:
            ns = np.round(np.asarray(values, dtype=np.float64) * 1e9).astype(np.int64)
            return origin + ns.astype("timedelta64[ns]")

        return seconds.astype(np.float64), back
    if times.dtype.kind not in "fiu":
        raise ValueError(f"times must be numbers or datetime64, got dtype {times.dtype}")
    return times.astype(np.float64), lambda values: np.asarray(values, dtype=np.float64)


def check_times(times: Any, x: np.ndarray, name: str) -> np.ndarray:
    """Validate sampling times for ``x`` (time last): shape ``(L,)`` or ``(n_series, L)``.

    NaN times mark padding of ragged series (those samples are ignored); the
    remaining times of each series must be strictly increasing.
    """
    if times is None:
        raise ValueError(
            f"{name} needs the sampling times: pass times=... (shape (n_times,) or "
            "(n_series, n_times)), or a DataArray with a 'time' coordinate"
        )
    t = np.asarray(times)
    if t.dtype.kind in "mM":
        t, _ = times_as_float(t)
    t = np.asarray(t, dtype=np.float64)
    L = x.shape[-1]
    if t.ndim == 1:
        if t.shape[0] != L:
            raise ValueError(f"{name}: times has {t.shape[0]} entries but X has {L} time steps")
        t = t[None, :]
    elif t.ndim == 2:
        if t.shape != (x.shape[0], L):
            raise ValueError(
                f"{name}: times of shape {t.shape} must be (n_times,)={L,} or "
                f"(n_series, n_times)={(x.shape[0], L)}"
            )
    else:
        raise ValueError(f"{name}: times must be 1-D or 2-D, got {t.ndim}-D")
    if np.isinf(t).any():
        raise ValueError(f"{name}: times contains inf")
    if np.isnan(t).all():
        raise ValueError(f"{name}: times are all NaN; at least one sample needs a time")
    for i, row in enumerate(t):
        r = row[~np.isnan(row)]
        bad = np.flatnonzero(np.diff(r) <= 0)
        if bad.size:
            j = bad[0]
            raise ValueError(
                f"{name}: times must be strictly increasing; series {i} has "
                f"times {r[j]:g} then {r[j + 1]:g}. Sort each series by time "
                "(np.argsort) and merge duplicate samples first"
            )
    return t
