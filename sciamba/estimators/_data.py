"""Input handling shared by the estimators: layout, xarray, NaN and sampling times.

Everything the estimators accept is reduced here to one internal form, a
:class:`Panel`: values of shape ``(n_series, n_channels, n_timesteps)`` with
NaN where nothing was observed, the boolean observation mask and the elapsed
time ``gaps`` of each observation since the previous one. The model never sees
NaN: missing steps enter it with input 0 and gap 0, which a gap-aware backbone
(``sciamba.nn`` Mamba) treats as "the state does not move"; the estimators move
them in front of each series' observations (packing), so the network reads the
observations consecutively.

Layout rules (time is the last axis, as in ``scipy.signal``):

* a 1-D array is one series, a 2-D array ``(n_series, n_timesteps)`` a
  collection of univariate series, a 3-D array
  ``(n_series, n_channels, n_timesteps)`` a collection of multichannel ones;
  after ``fit`` the same layout is required (a model fitted on one 1-D series
  also takes 2-D collections of such series), as scikit-learn requires 2-D
  input after a 2-D fit;
* ``n_features_in_`` is, as everywhere in scikit-learn, the size of axis 1 of
  the training ``X`` (time steps for 2-D input, channels for 3-D input); the
  whole per-series shape ``X.shape[1:]`` seen in ``fit`` is required again at
  predict time. Shorter series are given by padding them with leading NaN,
  which the model treats exactly as absent history;
* an :class:`xarray.DataArray` must have a ``time`` dimension; it is moved
  last and the remaining dimensions are (series) or (series, channel).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

__all__ = [
    "Panel",
    "as_panel",
    "future_times",
    "standardize",
    "wrap_series_output",
    "wrap_time_output",
]

TIME_DIM = "time"


@dataclass
class _Layout:
    """How the user's ``X`` looked, so outputs can be given back the same way."""

    ndim: int  # 1, 2 or 3: the user's dimensionality (after the time axis moved last)
    dims: tuple[str, ...] | None = None  # DataArray dims, time last; None for arrays
    coords: dict[str, Any] = field(default_factory=dict)  # non-time dim -> coord values
    time_coord: np.ndarray | None = None  # the DataArray's time coordinate values
    name: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Panel:
    """Validated series in the estimators' internal layout.

    Attributes
    ----------
    values : ndarray of shape (n_series, n_channels, n_timesteps)
        float64 values, NaN where not observed.
    observed : ndarray of bool, shape (n_series, n_timesteps)
        A time step counts as observed when at least one channel is finite;
        missing channels of an observed step are imputed with the channel mean
        (0 after standardization).
    gaps : ndarray of shape (n_series, n_timesteps)
        Elapsed time since the previous observed step, in units of the fitted
        time step (1 for every step of a regular series); 1 at the first
        observation and 0 at unobserved steps.
    layout : _Layout
        The input's original form.
    """

    values: np.ndarray
    observed: np.ndarray
    gaps: np.ndarray
    layout: _Layout

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    @property
    def n_channels(self) -> int:
        return self.values.shape[1]

    @property
    def n_timesteps(self) -> int:
        return self.values.shape[2]


def _is_dataarray(X: Any) -> bool:
    # Duck typing keeps xarray an import-on-demand dependency here.
    return type(X).__name__ == "DataArray" and hasattr(X, "dims") and hasattr(X, "coords")


def _unwrap_dataarray(X: Any) -> tuple[np.ndarray, _Layout]:
    if TIME_DIM not in X.dims:
        raise ValueError(
            f"a DataArray input needs a {TIME_DIM!r} dimension (the time axis); "
            f"got dims {tuple(X.dims)}. Rename the time dimension, e.g. "
            f"X.rename({{{X.dims[-1]!r}: 'time'}})."
        )
    other = [d for d in X.dims if d != TIME_DIM]
    if len(other) > 2:
        raise ValueError(
            f"a DataArray input may have at most 3 dimensions (series, channel, "
            f"{TIME_DIM}); got {len(X.dims)}-D with dims {tuple(X.dims)}."
        )
    X = X.transpose(*other, TIME_DIM)
    coords = {d: np.asarray(X[d].values) for d in other if d in X.coords}
    time_coord = np.asarray(X[TIME_DIM].values) if TIME_DIM in X.coords else None
    layout = _Layout(
        ndim=X.ndim,
        dims=tuple(X.dims),
        coords=coords,
        time_coord=time_coord,
        name=X.name,
        attrs=dict(X.attrs),
    )
    return np.asarray(X.values), layout


def _ndim_of(X: Any) -> int:
    if hasattr(X, "ndim") and hasattr(X, "shape"):
        return int(X.ndim)
    # Lists and other nested sequences: numpy finds the shape (or raggedness).
    ragged = ValueError(
        "X is a ragged nested sequence: series of unequal length must be "
        "padded into one array, with leading NaN before the shorter series."
    )
    try:
        arr = np.asarray(X)
    except ValueError:
        raise ragged from None
    if arr.dtype == object and any(isinstance(v, (list, tuple, np.ndarray)) for v in arr.flat):
        raise ragged
    return arr.ndim


def _times_to_float(times: np.ndarray) -> np.ndarray:
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        nat = np.isnat(times)
        out = times.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        out[nat] = np.nan
        return out
    if np.issubdtype(times.dtype, np.timedelta64):
        return times.astype("timedelta64[ns]").astype(np.int64).astype(np.float64)
    try:
        return times.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"times must be numeric or datetime64; got dtype {times.dtype}."
        ) from None


def time_step_of(times: np.ndarray, observed: np.ndarray) -> float:
    """Median positive spacing between consecutive observations (the time unit)."""
    diffs = []
    for t, m in zip(times, observed):
        tt = t[m]
        if tt.size > 1:
            diffs.append(np.diff(tt))
    if not diffs:
        return 1.0
    d = np.concatenate(diffs)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def _gaps(observed: np.ndarray, times: np.ndarray | None, unit: float) -> np.ndarray:
    """Elapsed time (in ``unit``) since the previous observed step; 1 at the first one."""
    n, T = observed.shape
    if times is None:
        times = np.broadcast_to(np.arange(T, dtype=np.float64), (n, T))
    gaps = np.zeros((n, T))
    for i in range(n):
        idx = np.flatnonzero(observed[i])
        if idx.size == 0:
            continue
        t = times[i, idx]
        g = np.empty(idx.size)
        g[0] = 1.0
        g[1:] = np.diff(t) / unit
        gaps[i, idx] = g
    return gaps


def _check_times(times: Any, n: int, T: int, observed: np.ndarray) -> np.ndarray:
    times = _times_to_float(np.asarray(times))
    if times.ndim == 1:
        if times.shape[0] != T:
            raise ValueError(
                f"times has {times.shape[0]} entries but X has {T} time steps; "
                "give one time per step of the last axis of X (or an array of "
                "shape (n_series, n_timesteps) for per-series times)."
            )
        times = np.broadcast_to(times, (n, T))
    elif times.shape != (n, T):
        raise ValueError(
            f"times must have shape ({T},) or ({n}, {T}) to match X; got {times.shape}."
        )
    for i in range(n):
        t = times[i, observed[i]]
        if not np.all(np.isfinite(t)):
            raise ValueError(
                f"times of series {i} is NaN or infinite at an observed step; "
                "every observed value needs a finite sampling time."
            )
        if np.any(np.diff(t) <= 0):
            raise ValueError(
                f"times of series {i} are not strictly increasing over the observed "
                "steps; sort the series by time (time is the last axis)."
            )
    return times


def as_panel(
    estimator: Any,
    X: Any,
    y: Any = "no_validation",
    *,
    reset: bool,
    times: Any = None,
    time_step: float | None = None,
    y_kwargs: dict[str, Any] | None = None,
) -> tuple[Panel, Any]:
    """Validate ``X`` (and ``y``) into a :class:`Panel`, scikit-learn style.

    Parameters
    ----------
    estimator : BaseEstimator
        Receives ``n_features_in_`` (and ``feature_names_in_``) when ``reset``.
    X : array-like or xarray.DataArray
        1-D, 2-D or 3-D input with time last.
    y : array-like, None or "no_validation"
        Passed to :func:`sklearn.utils.validation.validate_data`.
    reset : bool
        True in ``fit``: record the input's layout; False at predict time:
        check the input against it.
    times : array-like, optional
        Sampling instants, shape ``(n_timesteps,)`` or ``(n_series, n_timesteps)``.
        Taken from a DataArray's ``time`` coordinate when not given.
    time_step : float, optional
        The time unit for the gaps; the median spacing of ``times`` when None.
    y_kwargs : dict, optional
        Extra keywords for the ``y`` part of ``validate_data``.

    Returns
    -------
    panel : Panel
    y : ndarray or None
    """
    name = type(estimator).__name__
    layout = None
    if _is_dataarray(X):
        X, layout = _unwrap_dataarray(X)
        if times is None and layout.time_coord is not None:
            times = layout.time_coord
    ndim = _ndim_of(X)
    if ndim not in (1, 2, 3):
        raise ValueError(
            f"X must be 1-D (one series), 2-D (n_series, n_timesteps) or 3-D "
            f"(n_series, n_channels, n_timesteps) with time last; got a {ndim}-D "
            "input. Stack further dimensions into the series axis first."
        )
    if layout is None:
        layout = _Layout(ndim=ndim)
    if reset:
        estimator._input_ndim = ndim
    else:
        fitted_ndim = estimator._input_ndim
        # A model fitted on one series also takes a collection of such series
        # (2-D); other changes of layout are ambiguous or wrong.
        if ndim != fitted_ndim and not (fitted_ndim == 1 and ndim == 2):
            what = {1: "a single 1-D series", 2: "a 2-D array (n_series, n_timesteps)",
                    3: "a 3-D array (n_series, n_channels, n_timesteps)"}
            raise ValueError(
                f"{name} was fitted on {what[fitted_ndim]} but X is {ndim}-D. "
                "Reshape your data to the training layout"
                + (" (X.reshape(1, -1) for a single univariate series)." if fitted_ndim == 2
                   else ".")
            )
    if ndim == 1:
        # One series: a collection of one, so validate_data sees a sample row.
        X = np.asarray(X)[None, :]
        if y is not None and not isinstance(y, str):
            y_arr = np.asarray(y)
            if y_arr.ndim == 0:
                y = y_arr[None]

    check_params = dict(
        reset=reset,
        dtype=np.float64,
        ensure_all_finite="allow-nan",
        allow_nd=True,
        ensure_min_samples=1,
        ensure_min_features=1,
    )
    try:
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(estimator, X, **check_params)
        else:
            X, y = validate_data(estimator, X, y, **check_params, **(y_kwargs or {}))
    except ValueError as exc:
        msg = str(exc)
        if "features as input" in msg and ndim == 3:
            raise ValueError(
                f"{msg} Axis 1 of a 3-D X holds the channels: give series with the "
                "channels seen in fit."
            ) from exc
        if "could not convert" in msg or "convert string" in msg:
            raise ValueError(
                f"X must be numeric (floats with NaN for missing values): {msg}"
            ) from exc
        raise
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2:
        X = X[:, None, :]  # (n C=1 T)
    if not reset:
        fitted = estimator._input_shape
        if X.shape[1:] != fitted:
            raise ValueError(
                f"X has series of shape (n_channels, n_timesteps) = {X.shape[1:]}, but "
                f"{name} was fitted on {fitted}. Pad shorter series with leading NaN "
                "(treated as absent history) or keep the last steps of longer ones."
            )
    else:
        estimator._input_shape = X.shape[1:]

    return finish_panel(estimator, X, layout, times=times, time_step=time_step, reset=reset), y


def finish_panel(
    estimator: Any,
    values: np.ndarray,
    layout: _Layout,
    *,
    times: Any,
    time_step: float | None,
    reset: bool,
) -> Panel:
    """Observation mask and gaps of validated ``values`` ``(n C T)``."""
    observed = np.isfinite(values).any(axis=1)  # (n T)
    empty = np.flatnonzero(~observed.any(axis=1))
    if empty.size:
        raise ValueError(
            f"series {empty[:10].tolist()} of X {'are' if empty.size > 1 else 'is'} "
            "all NaN: every series needs at least one observed value."
        )
    n, _, T = values.shape
    if times is not None:
        times = _check_times(times, n, T, observed)
        unit = time_step if time_step is not None else time_step_of(times, observed)
    else:
        unit = 1.0
    if reset:
        estimator._time_step = unit if times is not None else None
    gaps = _gaps(observed, times, unit)
    return Panel(values=values, observed=observed, gaps=gaps, layout=layout)


def pack_observations(panel: Panel) -> tuple[Panel, np.ndarray]:
    """Each series' observations moved to its end, in time order; missing steps in front.

    The network then reads the observations consecutively (its causal
    convolution never sees a placeholder at an interior gap), the gaps carry
    the time that passed between them, and the missing steps become inert
    left padding (input 0, gap 0). A series without interior NaN is unchanged.

    Returns
    -------
    packed : Panel
        Values, mask and gaps permuted along time, series by series.
    order : ndarray of int, shape (n_series, n_timesteps)
        ``order[i, j]``: the time step of series ``i`` now at position ``j``.
    """
    order = np.argsort(panel.observed, axis=1, kind="stable")  # (n T): False first, time order kept
    packed = Panel(
        values=np.take_along_axis(panel.values, order[:, None, :], axis=2),  # (n C T)
        observed=np.take_along_axis(panel.observed, order, axis=1),  # (n T)
        gaps=np.take_along_axis(panel.gaps, order, axis=1),  # (n T)
        layout=panel.layout,
    )
    return packed, order


def standardize(values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(values - mean) / scale`` with NaN set to 0 (the mean), as float32.

    ``values`` is ``(n C T)``; ``mean`` and ``scale`` broadcast against it.
    """
    z = (values - mean) / scale
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


def nan_mean_std(values: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over observed values; scale 1 where constant or empty."""
    count = np.isfinite(values).sum(axis=axis, keepdims=True)
    filled = np.where(np.isfinite(values), values, 0.0)
    mean = filled.sum(axis=axis, keepdims=True) / np.maximum(count, 1)
    var = (np.where(np.isfinite(values), values - mean, 0.0) ** 2).sum(
        axis=axis, keepdims=True
    ) / np.maximum(count, 1)
    scale = np.sqrt(var)
    scale = np.where(scale > 1e-12 * np.maximum(np.abs(mean), 1.0), scale, 1.0)
    return mean, scale


def wrap_series_output(
    out: np.ndarray, layout: _Layout, extra: tuple[str, np.ndarray] | None = None
) -> Any:
    """Give a per-series result back as a DataArray when the input was one.

    ``out`` has the series axis first (absent for a single-series input) and
    optionally one extra axis named by ``extra`` (name, coordinate values).
    """
    if layout.dims is None:
        return out
    import xarray as xr

    dims: list[str] = []
    coords: dict[str, Any] = {}
    if layout.ndim >= 2:
        series_dim = layout.dims[0]
        dims.append(series_dim)
        if series_dim in layout.coords:
            coords[series_dim] = layout.coords[series_dim]
    if extra is not None and out.ndim == len(dims) + 1:
        dims.append(extra[0])
        coords[extra[0]] = extra[1]
    return xr.DataArray(out, dims=dims, coords=coords, name=layout.name)


def future_times(
    time: Any, horizon: int, *, time_step: float | None = None
) -> np.ndarray:
    """The ``horizon`` time stamps after ``time[-1]``, continuing its sampling.

    Parameters
    ----------
    time : array-like of shape (n_timesteps,)
        Increasing sampling times: ``datetime64``, ``timedelta64`` or numbers.
        ``NaT``/NaN entries are ignored.
    horizon : int
        Number of future stamps (>= 0).
    time_step : float, optional
        The step used when ``time`` is irregular, in the units of ``time``
        (nanoseconds for datetimes, as :func:`as_panel` measures them).
        Defaults to the median spacing of ``time``.

    Returns
    -------
    ndarray of shape (horizon,)
        ``datetime64[ns]`` for datetime input, ``timedelta64[ns]`` for
        timedelta input, else the dtype of ``time`` (integers stay integers
        when the step is whole).

    Notes
    -----
    The rules, in order:

    1. Datetimes on a calendar frequency that pandas recognizes
       (:func:`pandas.infer_freq`: month or year starts or ends, business
       days, days, hours, ...; at least 3 stamps) continue exactly with
       :func:`pandas.date_range` on that frequency, so a yearly series on
       January 1st continues on January 1st and a monthly one on the first
       of each month, whatever the lengths of the months.
    2. Datetimes that fall on the same day of the month and time of day
       (e.g. the 15th of every month) continue by a whole number of calendar
       months: the median of their month-to-month steps
       (:class:`pandas.DateOffset`). Such stamps may skip months.
    3. Anything else (numbers, timedeltas, irregular datetimes) continues by
       a fixed step: the common spacing when all spacings are equal, else
       ``time_step``, else the median spacing. For irregular datetimes this
       is a fixed duration (e.g. the median of 30.4 days), so it drifts
       against the calendar; give regular calendar stamps to avoid that.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> t = pd.date_range("2000-01-01", periods=4, freq="YS").to_numpy()
    >>> [str(x)[:10] for x in future_times(t, 2)]
    ['2004-01-01', '2005-01-01']
    >>> t = pd.date_range("2000-11-01", periods=3, freq="MS").to_numpy()
    >>> [str(x)[:10] for x in future_times(t, 2)]
    ['2001-02-01', '2001-03-01']
    >>> future_times(np.array([1700, 1701, 1702]), 2)
    array([1703, 1704])
    >>> future_times(np.array([0.0, 0.5, 1.0]), 2)
    array([1.5, 2. ])
    """
    import pandas as pd

    horizon = int(horizon)
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0; got {horizon}.")
    t = np.asarray(time)
    if t.ndim != 1:
        raise ValueError(f"time must be 1-D (one stamp per step); got shape {t.shape}.")
    k = np.arange(1, horizon + 1)
    is_dt = np.issubdtype(t.dtype, np.datetime64)
    is_td = np.issubdtype(t.dtype, np.timedelta64)
    if is_dt or is_td:
        unit = "datetime64[ns]" if is_dt else "timedelta64[ns]"
        t = t.astype(unit)
        t = t[~np.isnat(t)]
    elif np.issubdtype(t.dtype, np.number):
        t = t[np.isfinite(t)] if np.issubdtype(t.dtype, np.floating) else t
    else:
        raise TypeError(f"time must be numeric, datetime64 or timedelta64; got dtype {t.dtype}.")
    if t.size == 0:
        raise ValueError("time has no valid (non-NaT, finite) stamp to continue from.")
    if t.size > 1 and np.any(np.diff(t).astype(np.float64) <= 0):
        raise ValueError("time must be strictly increasing to be continued; sort it first.")
    if horizon == 0:
        return t[:0]

    if is_dt and t.size >= 3:
        idx = pd.DatetimeIndex(t)
        with warnings.catch_warnings():
            # pandas 3 announces that infer_freq will return an offset instead of
            # a string; date_range takes either, so the change does not matter here.
            warnings.filterwarnings("ignore", message=".*infer_freq.*")
            freq = pd.infer_freq(idx)
        if freq is not None:
            # Inferred from the stamps, so the last one lies on the frequency and
            # date_range starts exactly there.
            fut = pd.date_range(idx[-1], periods=horizon + 1, freq=freq)
            if fut[0] == idx[-1]:
                return fut[1:].to_numpy().astype(unit)
    if is_dt and t.size >= 2:
        idx = pd.DatetimeIndex(t)
        months = np.asarray(idx.year * 12 + idx.month - 1)
        same_day = np.all(idx.day == idx.day[0])
        # The time of day as an offset from midnight, so 12:00 stays 12:00.
        tod = np.asarray(idx - idx.normalize())
        if same_day and np.all(tod == tod[0]):
            step = round(float(np.median(np.diff(months))))
            if step > 0:
                last = idx[-1]
                return np.array(
                    [last + pd.DateOffset(months=step * int(j)) for j in k], dtype=unit
                )

    d = np.diff(t).astype(np.float64) if t.size > 1 else np.empty(0)
    if d.size and np.all(d == d[0]):
        step = float(d[0])
    elif time_step is not None:
        step = float(time_step)
    elif d.size:
        step = float(np.median(d))
    else:
        raise ValueError(
            "time has a single stamp, so its step is unknown; give time_step "
            "(or at least two stamps)."
        )
    if is_dt or is_td:
        return t[-1] + np.round(k * step).astype("timedelta64[ns]")
    out = t[-1] + k * step
    if np.issubdtype(t.dtype, np.integer) and step.is_integer():
        out = out.astype(t.dtype)
    return out


def continue_time(layout: _Layout, time_step: float | None, horizon: int) -> np.ndarray | None:
    """The ``horizon`` time coordinates after the input's last one, or None.

    :func:`future_times` of the input's ``time`` coordinate, with the fitted
    time step (the unit the model forecasts in) as the step of irregular
    coordinates. None when there is no coordinate to continue.
    """
    t = layout.time_coord
    if t is None or t.size == 0:
        return None
    try:
        return future_times(t, horizon, time_step=time_step)
    except (TypeError, ValueError):
        # A coordinate of labels, or one stamp with no step: the forecast's time
        # axis is then left without coordinates rather than invented.
        return None


def wrap_time_output(
    out: np.ndarray,
    layout: _Layout,
    time_step: float | None,
    extra: tuple[str, np.ndarray] | None = None,
) -> Any:
    """Give a forecast ``(..., [extra,] horizon)`` back as a DataArray.

    The leading axes follow the input's series/channel axes; the ``time``
    coordinate continues the input's one.
    """
    if layout.dims is None:
        return out
    import xarray as xr

    lead = list(layout.dims[:-1])
    dims = lead + ([extra[0]] if extra is not None else []) + [TIME_DIM]
    coords: dict[str, Any] = {d: layout.coords[d] for d in lead if d in layout.coords}
    if extra is not None:
        coords[extra[0]] = extra[1]
    t = continue_time(layout, time_step, out.shape[-1])
    if t is not None:
        coords[TIME_DIM] = t
    return xr.DataArray(out, dims=dims, coords=coords, name=layout.name, attrs=layout.attrs)
