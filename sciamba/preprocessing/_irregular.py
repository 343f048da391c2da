"""Irregular sampling and missing values: Lomb-Scargle, regridding, gap filling.

Astronomy light curves and clinical vitals are sampled at irregular times and
have gaps. A batch of such series is ``X`` with NaN for missing values plus
sampling ``times`` of shape ``(n_times,)`` (shared) or ``(n_series, n_times)``
(one row per series; NaN pads series that have fewer samples). Without
``times`` (and without a DataArray ``time`` coordinate) the samples are taken
to be at ``0, 1, ..., n_times - 1``: a regular series with gaps.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import interpolate, signal
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import NewAxis, NewLengthSeriesMixin, OneToOneSeriesMixin, SeriesTransformer
from ._functional import run_as_function
from ._validation import FREQ_DIM, check_times, times_as_float

__all__ = [
    "LombScargle", "Interpolate", "FillMissing", "lomb_scargle", "interpolate_series",
    "fill_missing",
]


def _times_or_index(times: Any, x: np.ndarray, name: str) -> np.ndarray:
    """Validated float times ``(1 or n_series, n_times)``; sample index if None."""
    if times is None:
        return np.arange(x.shape[-1], dtype=np.float64)[None, :]
    return check_times(times, x, name)


def _rows(x: np.ndarray, t: np.ndarray):
    """Yield ``(index, t_obs, y_obs)`` for every 1-D series of ``x`` (time last).

    ``t`` is ``(1 or n_series, n_times)``; missing samples (NaN in ``x`` or ``t``)
    are dropped.
    """
    lead = x.shape[:-1]
    for idx in np.ndindex(*lead):
        trow = t[0] if t.shape[0] == 1 else t[idx[0]]
        y = x[idx]
        keep = ~(np.isnan(y) | np.isnan(trow))
        yield idx, trow[keep], y[keep], keep


class LombScargle(NewLengthSeriesMixin, SeriesTransformer):
    r"""Lomb-Scargle periodogram of irregularly sampled series as features.

    For each series (and channel) the observed samples :math:`(t_j, y_j)` (NaN
    dropped) go to :func:`scipy.signal.lombscargle` at the angular frequencies
    :math:`\omega = 2\pi f`. The generalized periodogram fits
    :math:`y(t) = a\cos\omega t + b\sin\omega t + c` by weighted least squares
    at each frequency [1]_ [2]_; with ``floating_mean=True`` the offset
    :math:`c` is fitted per frequency [3]_ (recommended for light curves
    whose mean is not zero). Output ``(..., n_frequencies)``; a DataArray gets
    a ``frequency`` dimension. A series with fewer than 2 observed samples gets
    an all-NaN spectrum. Stateless.

    Parameters
    ----------
    frequencies : array-like of float
        Positive frequencies in cycles per unit of ``times`` (Hz for seconds,
        and for datetime coordinates, which are converted to seconds).
    normalize : bool, default=True
        Normalize by the residuals around a zero model (values in [0, 1]), or
        return the unnormalized power.
    floating_mean : bool, default=True
        Fit a constant offset at each frequency.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    lomb_scargle : Functional equivalent.
    astropy.timeseries.LombScargle : Fast approximations and false-alarm
        probabilities for a single series.

    References
    ----------
    .. [1] N. R. Lomb, "Least-squares frequency analysis of unequally spaced
       data", Astrophysics and Space Science 39, pp. 447-462, 1976.
    .. [2] J. D. Scargle, "Studies in astronomical time series analysis. II",
       The Astrophysical Journal 263, pp. 835-853, 1982.
    .. [3] M. Zechmeister, M. Kürster, "The generalised Lomb-Scargle
       periodogram", Astronomy & Astrophysics 496, pp. 577-584, 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import LombScargle
    >>> rng = np.random.default_rng(0)
    >>> times = np.sort(rng.uniform(0, 20, size=(3, 150)), axis=1)
    >>> X = 5.0 + np.sin(2 * np.pi * 0.7 * times)
    >>> freqs = np.linspace(0.1, 2.0, 96)
    >>> P = LombScargle(freqs).fit_transform(X, times=times)
    >>> P.shape, np.round(freqs[P.argmax(axis=1)], 1)
    ((3, 96), array([0.7, 0.7, 0.7]))
    """

    _allow_nan = True
    _parameter_constraints: dict = {
        "frequencies": ["array-like"],
        "normalize": ["boolean"],
        "floating_mean": ["boolean"],
    }

    def __init__(self, frequencies: ArrayLike, normalize: bool = True,
                 floating_mean: bool = True) -> None:
        self.frequencies = frequencies
        self.normalize = normalize
        self.floating_mean = floating_mean

    def _freqs(self) -> np.ndarray:
        f = np.asarray(self.frequencies, dtype=np.float64)
        if f.ndim != 1 or f.size == 0 or not np.isfinite(f).all() or (f <= 0).any():
            raise ValueError(
                "LombScargle: frequencies must be a non-empty 1-D array of finite positive "
                f"frequencies (cycles per time unit), got {self.frequencies!r}"
            )
        return f

    @property
    def _n_features_out(self) -> int:
        check_is_fitted(self, "n_features_in_")
        self._check_2d_fit("get_feature_names_out")
        return self._freqs().size

    def _fit_series(self, x, times):
        _times_or_index(times, x, "LombScargle")
        self._freqs()

    def _transform_series(self, x, times, weights=None):
        freqs = self._freqs()
        t = _times_or_index(times, x, "LombScargle")
        w = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            try:
                w = np.broadcast_to(w, x.shape)
            except ValueError:
                raise ValueError(
                    f"LombScargle: weights of shape {w.shape} do not broadcast to X's shape {x.shape}"
                ) from None
        out = np.empty(x.shape[:-1] + (freqs.size,))
        omega = 2.0 * np.pi * freqs
        for idx, tt, yy, keep in _rows(x, t):
            if tt.size < 2:
                # Nothing to fit a sinusoid to: the spectrum is missing, not zero.
                out[idx] = np.nan
                continue
            ww = None
            if w is not None:
                ww = w[idx][keep]
                if not np.isfinite(ww).all() or (ww < 0).any() or ww.sum() <= 0:
                    raise ValueError(
                        f"LombScargle: weights of series {idx} must be finite, >= 0 and not all 0"
                    )
            out[idx] = signal.lombscargle(tt, yy, omega, normalize=self.normalize, weights=ww,
                                          floating_mean=self.floating_mean)
        return out, NewAxis(FREQ_DIM, freqs)

    def fit(self, X: Any, y: Any = None, times: Any = None, weights: Any = None) -> "LombScargle":
        """Validate the parameters, ``X`` and ``times``; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Values; NaN marks a missing sample.
        y : None
            Ignored.
        times : array-like of shape (n_times,) or (n_series, n_times), default=None
            Sampling times; default: a DataArray's ``time`` coordinate, else
            ``0, 1, ..., n_times - 1``.
        weights : array-like broadcastable to X, default=None
            Non-negative sample weights (e.g. ``1 / sigma**2``); only validated here.

        Returns
        -------
        self : object
        """
        self._validate_params()
        return self._fit(X, times=times)

    def transform(self, X: Any, times: Any = None, weights: Any = None) -> Any:
        """Lomb-Scargle power of each series at ``frequencies``.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Values; NaN marks a missing sample (at least 2 observed per series).
        times : array-like of shape (n_times,) or (n_series, n_times), default=None
            Strictly increasing sampling times (NaN pads ragged series); default:
            a DataArray's ``time`` coordinate, else ``0, 1, ..., n_times - 1``.
        weights : array-like broadcastable to X, default=None
            Non-negative sample weights.

        Returns
        -------
        P : ndarray of shape (n_series, [n_channels,] n_frequencies) or xarray.DataArray
        """
        return self._transform(X, times=times, weights=weights)

    def fit_transform(self, X: Any, y: Any = None, times: Any = None, weights: Any = None) -> Any:
        """Fit, then transform with the same ``times`` and ``weights``.

        Parameters
        ----------
        X, y, times, weights
            As in :meth:`fit` and :meth:`transform`.

        Returns
        -------
        P : ndarray or xarray.DataArray
        """
        return self.fit(X, y, times=times, weights=weights).transform(X, times=times,
                                                                       weights=weights)


class Interpolate(SeriesTransformer):
    """Resample irregularly sampled series onto a regular time grid.

    The grid runs from the earliest to the latest sampling time in the batch,
    every ``step``. Each series (and channel) is interpolated from its observed
    samples (NaN dropped) with ``method``; grid points outside a series' own
    observed span, or inside a gap between consecutive observations longer
    than ``max_gap``, are NaN -- the missing data stays visible rather than
    being invented. A DataArray gets the grid as its ``time`` coordinate
    (datetimes stay datetimes; ``step`` is then in seconds) and ``fs = 1/step``
    as an attribute. Stateless; the output length depends on the batch's
    time span, so there are no fixed feature names.

    Parameters
    ----------
    step : float
        Grid spacing, in the units of ``times`` (seconds for datetimes).
    method : {"linear", "cubic", "pchip"}, default="linear"
        :func:`numpy.interp`, :class:`scipy.interpolate.CubicSpline`
        (not-a-knot) or :class:`scipy.interpolate.PchipInterpolator`
        (monotone, no overshoot).
    max_gap : float or None, default=None
        Largest gap between consecutive observations to interpolate across;
        None: no limit.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    interpolate_series : Functional equivalent, also returning the grid.
    FillMissing : Fill NaN gaps of regularly sampled series.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Interpolate
    >>> times = np.array([0.0, 0.5, 1.0, 4.0, 4.5])
    >>> X = np.array([[0.0, 1.0, 2.0, 8.0, 9.0]])
    >>> Interpolate(step=1.0, max_gap=2.0).fit_transform(X, times=times)
    array([[ 0.,  2., nan, nan,  8.]])
    """

    _allow_nan = True
    _parameter_constraints: dict = {
        "step": [Interval(Real, 0, None, closed="neither")],
        "method": [StrOptions({"linear", "cubic", "pchip"})],
        "max_gap": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, step: float, method: str = "linear", max_gap: float | None = None) -> None:
        self.step = step
        self.method = method
        self.max_gap = max_gap

    def _fit_series(self, x, times):
        _times_or_index(times, x, "Interpolate")

    def _transform_series(self, x, times):
        back = None
        if times is not None and np.asarray(times).dtype.kind in "mM":
            _, back = times_as_float(np.asarray(times).reshape(-1)[:1])
        t = _times_or_index(times, x, "Interpolate")
        lo, hi = np.nanmin(t), np.nanmax(t)
        # The tolerance keeps the last point when (hi - lo) / step is an integer
        # up to rounding.
        n = int(np.floor((hi - lo) / self.step + 1e-9)) + 1
        n_values = int(np.prod(x.shape[:-1])) * n
        if n_values > 10**9:
            raise ValueError(
                f"Interpolate: step={self.step:g} over the time span {hi - lo:g} gives a grid of "
                f"{n} points ({n_values} output values); use a larger step"
            )
        grid = lo + self.step * np.arange(n)
        out = np.full(x.shape[:-1] + (n,), np.nan)
        for idx, tt, yy, _ in _rows(x, t):
            if tt.size == 0:
                continue
            if tt.size == 1:
                out[idx][grid == tt[0]] = yy[0]
                continue
            if self.method == "linear":
                vals = np.interp(grid, tt, yy)
            elif self.method == "cubic":
                vals = interpolate.CubicSpline(tt, yy)(grid)
            else:
                vals = interpolate.PchipInterpolator(tt, yy)(grid)
            inside = (grid >= tt[0]) & (grid <= tt[-1])
            if self.max_gap is not None:
                right = np.clip(np.searchsorted(tt, grid, side="right"), 1, tt.size - 1)
                on_sample = tt[right - 1] == grid
                inside &= on_sample | (tt[right] - tt[right - 1] <= self.max_gap)
            out[idx] = np.where(inside, vals, np.nan)
        return out, NewAxis("time", grid if back is None else back(grid), fs=1.0 / self.step)

    def fit(self, X: Any, y: Any = None, times: Any = None) -> "Interpolate":
        """Validate the parameters, ``X`` and ``times``; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Values; NaN marks a missing sample.
        y : None
            Ignored.
        times : array-like of shape (n_times,) or (n_series, n_times), default=None
            Sampling times; default: a DataArray's ``time`` coordinate, else
            ``0, 1, ..., n_times - 1``.

        Returns
        -------
        self : object
        """
        self._validate_params()
        return self._fit(X, times=times)

    def transform(self, X: Any, times: Any = None) -> Any:
        """Interpolate onto the regular grid.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Values; NaN marks a missing sample.
        times : array-like of shape (n_times,) or (n_series, n_times), default=None
            Strictly increasing sampling times (NaN pads ragged series).

        Returns
        -------
        Xt : ndarray of shape (n_series, [n_channels,] n_grid) or xarray.DataArray
        """
        return self._transform(X, times=times)

    def fit_transform(self, X: Any, y: Any = None, times: Any = None) -> Any:
        """Fit, then transform with the same ``times``.

        Parameters
        ----------
        X, y, times
            As in :meth:`fit` and :meth:`transform`.

        Returns
        -------
        Xt : ndarray or xarray.DataArray
        """
        return self.fit(X, y, times=times).transform(X, times=times)


class FillMissing(OneToOneSeriesMixin, SeriesTransformer):
    """Fill NaN gaps of regularly sampled series.

    ``"linear"``: straight line between the observed neighbours (by sample
    index), the ends held at the first/last observed value; ``"ffill"``: last
    observed value carried forward, leading gaps take the first observed value;
    ``"zero"``: 0. Stateless.

    Parameters
    ----------
    method : {"linear", "ffill", "zero"}, default="linear"
        Fill rule.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    fill_missing : Functional equivalent.
    Interpolate : For irregular sampling times.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import FillMissing
    >>> X = np.array([[np.nan, 1.0, np.nan, 3.0, np.nan]])
    >>> FillMissing().fit_transform(X)
    array([[1., 1., 2., 3., 3.]])
    >>> FillMissing("ffill").fit_transform(X)
    array([[1., 1., 1., 3., 3.]])
    """

    _allow_nan = True
    _parameter_constraints: dict = {"method": [StrOptions({"linear", "ffill", "zero"})]}

    def __init__(self, method: str = "linear") -> None:
        self.method = method

    def _transform_series(self, x, times):
        missing = np.isnan(x)
        if not missing.any():
            return x.copy(), None
        if self.method == "zero":
            return np.where(missing, 0.0, x), None
        empty = missing.all(axis=-1)
        if empty.any():
            where = tuple(int(i) for i in np.argwhere(empty)[0])
            raise ValueError(
                f"FillMissing(method={self.method!r}): series {where} has no observed sample; "
                "drop it or use method='zero'"
            )
        n = x.shape[-1]
        pos = np.arange(n)
        if self.method == "ffill":
            last = np.maximum.accumulate(np.where(missing, -1, pos), axis=-1)
            first = np.argmax(~missing, axis=-1)[..., None]
            return np.take_along_axis(x, np.where(last < 0, first, last), axis=-1), None
        y = x.copy()
        flat, flat_missing = y.reshape(-1, n), missing.reshape(-1, n)
        for r in np.flatnonzero(flat_missing.any(axis=-1)):
            m = flat_missing[r]
            flat[r, m] = np.interp(pos[m], pos[~m], flat[r, ~m])
        return y, None


def lomb_scargle(x: ArrayLike, times: ArrayLike | None, frequencies: ArrayLike, *,
                 normalize: bool = True, floating_mean: bool = True,
                 weights: ArrayLike | None = None, axis: int = -1) -> np.ndarray:
    """Lomb-Scargle periodogram along ``axis``; functional form of :class:`LombScargle`.

    Parameters
    ----------
    x : array_like
        Values; NaN marks missing samples.
    times : array_like or None
        Sampling times, shape ``(n,)``, or ``(n_series, n)`` for ``x`` of shape
        ``(n_series, ..., n)`` once ``axis`` is moved last. None: ``0, 1, ..., n - 1``.
    frequencies, normalize, floating_mean
        As in :class:`LombScargle` (ordinary, not angular, frequencies).
    weights : array_like or None, default=None
        Sample weights broadcastable to ``x`` (same layout as ``x``).
    axis : int, default=-1
        Time axis.

    Returns
    -------
    P : ndarray
        Periodogram, ``axis`` now over ``frequencies``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import signal
    >>> from sciamba.preprocessing import lomb_scargle
    >>> t = np.sort(np.random.default_rng(0).uniform(0, 10, 80))
    >>> y = np.cos(2 * np.pi * 0.5 * t)
    >>> f = np.array([0.25, 0.5, 1.0])
    >>> ref = signal.lombscargle(t, y, 2 * np.pi * f, normalize=True, floating_mean=True)
    >>> np.allclose(lomb_scargle(y, t, f), ref)
    True
    """
    est = LombScargle(frequencies, normalize=normalize, floating_mean=floating_mean)
    est._validate_params()
    from ._validation import as_float_series

    xt = as_float_series(x, axis=axis, name="lomb_scargle", allow_nan=True)
    if weights is not None:
        # Weights follow x: broadcast in x's layout, then move time last with it.
        try:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), np.shape(x))
        except ValueError:
            raise ValueError(
                f"lomb_scargle: weights of shape {np.shape(weights)} do not broadcast to x's "
                f"shape {np.shape(x)}"
            ) from None
        weights = np.moveaxis(w, axis, -1)
    out, _ = est._transform_series(xt, times, weights=weights)
    return np.moveaxis(out, -1, axis)


def interpolate_series(x: ArrayLike, times: ArrayLike | None, step: float, *,
                       method: str = "linear", max_gap: float | None = None,
                       axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate onto a regular grid; functional form of :class:`Interpolate`.

    Parameters
    ----------
    x : array_like
        Values; NaN marks missing samples.
    times : array_like or None
        Sampling times, shape ``(n,)`` or ``(x.shape[0], n)`` (time last).
    step, method, max_gap
        As in :class:`Interpolate`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    grid : ndarray
        The regular times (numbers; datetimes as seconds since the first one).
    y : ndarray
        Interpolated values on ``grid``, NaN where not interpolated.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import interpolate_series
    >>> grid, y = interpolate_series([1.0, 3.0, 2.0], [0.0, 1.0, 3.0], 0.5)
    >>> grid
    array([0. , 0.5, 1. , 1.5, 2. , 2.5, 3. ])
    >>> y
    array([1.  , 2.  , 3.  , 2.75, 2.5 , 2.25, 2.  ])
    """
    if times is not None and np.asarray(times).dtype.kind in "mM":
        times, _ = times_as_float(times)
    est = Interpolate(step, method=method, max_gap=max_gap)
    out, ax = run_as_function(est, x, axis, times=times, name="interpolate_series")
    return ax.values, out


def fill_missing(x: ArrayLike, method: str = "linear", *, axis: int = -1) -> np.ndarray:
    """Fill NaN gaps along ``axis``; functional form of :class:`FillMissing`.

    Parameters
    ----------
    x : array_like
        Signal(s) with NaN for missing samples.
    method : {"linear", "ffill", "zero"}, default="linear"
        As in :class:`FillMissing`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filled signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import fill_missing
    >>> fill_missing(np.array([[1.0, np.nan, np.nan, 4.0]]))
    array([[1., 2., 3., 4.]])
    """
    return run_as_function(FillMissing(method), x, axis, name="fill_missing")[0]
