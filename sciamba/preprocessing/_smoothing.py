"""Trend removal and smoothing: detrend, Savitzky-Golay, median filter."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import OneToOneSeriesMixin, SeriesTransformer
from ._functional import run_as_function

__all__ = ["Detrend", "SavgolFilter", "MedianFilter", "detrend", "savgol_filter", "median_filter"]


class Detrend(OneToOneSeriesMixin, SeriesTransformer):
    r"""Remove a constant or (piecewise) linear least-squares trend from each series.

    Calls :func:`scipy.signal.detrend` along time. With ``type="linear"`` and
    breakpoints :math:`b_1 < \dots < b_k`, a separate line is fitted to each
    segment ``x[b_i:b_{i+1}]`` and subtracted. Stateless.

    Parameters
    ----------
    type : {"linear", "constant"}, default="linear"
        Subtract the least-squares line, or only the mean.
    bp : int or array-like of int, default=0
        Breakpoints (sample indices) of a piecewise-linear trend; only used
        with ``type="linear"``. Every breakpoint must be ``<= n_times``.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    detrend : Functional equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Detrend
    >>> t = np.arange(100.0)
    >>> X = np.stack([3.0 + 0.5 * t, -2.0 * t])
    >>> bool(np.abs(Detrend().fit_transform(X)).max() < 1e-10)
    True
    """

    _parameter_constraints: dict = {
        "type": [StrOptions({"linear", "constant"})],
        "bp": [Interval(Integral, 0, None, closed="left"), "array-like"],
    }

    def __init__(self, type: str = "linear", bp: int | ArrayLike = 0) -> None:
        self.type = type
        self.bp = bp

    def _check_config(self, n):
        bp = np.atleast_1d(np.asarray(self.bp))
        if self.type == "linear":
            if bp.dtype.kind not in "iu" or bp.ndim != 1:
                raise ValueError(f"Detrend: bp must be an int or a 1-D sequence of ints, got {self.bp!r}")
            if bp.size and (bp.min() < 0 or bp.max() > n):
                raise ValueError(
                    f"Detrend: breakpoints must lie in [0, n_times]=[0, {n}]; got bp={self.bp!r}"
                )

    def _transform_series(self, x, times):
        self._check_config(x.shape[-1])
        return signal.detrend(x, axis=-1, type=self.type, bp=self.bp), None


class SavgolFilter(OneToOneSeriesMixin, SeriesTransformer):
    r"""Savitzky-Golay smoothing (or differentiation) along time.

    Fits a polynomial of degree ``polyorder`` by least squares to each window
    of ``window_length`` samples and evaluates it (or its ``deriv``-th
    derivative) at the window centre; calls :func:`scipy.signal.savgol_filter`.
    Stateless.

    Parameters
    ----------
    window_length : int
        Window length in samples; ``polyorder < window_length``. With
        ``mode="interp"`` series must have at least ``window_length`` samples.
    polyorder : int
        Degree of the fitted polynomial.
    deriv : int, default=0
        Order of the derivative to return (0: smoothed signal).
    delta : float, default=1.0
        Sample spacing, used when ``deriv > 0`` (``1/fs``).
    mode : {"interp", "mirror", "constant", "nearest", "wrap"}, default="interp"
        Edge handling, as in :func:`scipy.signal.savgol_filter`.
    cval : float, default=0.0
        Fill value for ``mode="constant"``.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    savgol_filter : Functional equivalent.

    References
    ----------
    .. [1] A. Savitzky, M. J. E. Golay, "Smoothing and Differentiation of Data
       by Simplified Least Squares Procedures", Analytical Chemistry 36(8),
       pp. 1627-1639, 1964.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import SavgolFilter
    >>> t = np.linspace(0, 1, 101)
    >>> X = (t ** 2)[None, :]
    >>> dX = SavgolFilter(7, 2, deriv=1, delta=t[1] - t[0]).fit_transform(X)
    >>> np.allclose(dX[0], 2 * t)
    True
    """

    _parameter_constraints: dict = {
        "window_length": [Interval(Integral, 1, None, closed="left")],
        "polyorder": [Interval(Integral, 0, None, closed="left")],
        "deriv": [Interval(Integral, 0, None, closed="left")],
        "delta": [Interval(Real, 0, None, closed="neither")],
        "mode": [StrOptions({"interp", "mirror", "constant", "nearest", "wrap"})],
        "cval": [Real],
    }

    def __init__(self, window_length: int, polyorder: int, deriv: int = 0, delta: float = 1.0,
                 mode: str = "interp", cval: float = 0.0) -> None:
        self.window_length = window_length
        self.polyorder = polyorder
        self.deriv = deriv
        self.delta = delta
        self.mode = mode
        self.cval = cval

    def _check_config(self, n):
        if self.polyorder >= self.window_length:
            raise ValueError(
                f"SavgolFilter: polyorder={self.polyorder} must be less than "
                f"window_length={self.window_length}"
            )
        if self.mode == "interp" and self.window_length > n:
            raise ValueError(
                f"SavgolFilter: with mode='interp' series must have at least "
                f"window_length={self.window_length} samples; got {n}. Use a shorter "
                "window or another mode (e.g. 'mirror')"
            )

    def _transform_series(self, x, times):
        self._check_config(x.shape[-1])
        y = signal.savgol_filter(x, self.window_length, self.polyorder, deriv=self.deriv,
                                 delta=self.delta, axis=-1, mode=self.mode, cval=self.cval)
        return y, None


class MedianFilter(OneToOneSeriesMixin, SeriesTransformer):
    """Running median of ``kernel_size`` samples along time (spike/artifact removal).

    Calls :func:`scipy.signal.medfilt` with a kernel of length 1 on every axis
    but time, so each series is filtered on its own; the ends are zero-padded,
    as in ``medfilt``. Stateless.

    Parameters
    ----------
    kernel_size : int, default=3
        Odd window length.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    median_filter : Functional equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import MedianFilter
    >>> X = np.array([[1.0, 1.0, 9.0, 1.0, 1.0]])
    >>> MedianFilter(3).fit_transform(X)
    array([[1., 1., 1., 1., 1.]])
    """

    _parameter_constraints: dict = {"kernel_size": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, kernel_size: int = 3) -> None:
        self.kernel_size = kernel_size

    def _check_config(self, n):
        if self.kernel_size % 2 == 0:
            raise ValueError(f"MedianFilter: kernel_size must be odd, got {self.kernel_size}")

    def _transform_series(self, x, times):
        self._check_config(x.shape[-1])
        kernel = (1,) * (x.ndim - 1) + (int(self.kernel_size),)
        return signal.medfilt(x, kernel), None


def detrend(x: ArrayLike, *, type: str = "linear", bp: int | ArrayLike = 0,
            axis: int = -1) -> np.ndarray:
    """Remove a linear or constant trend; functional form of :class:`Detrend`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    type, bp
        As in :class:`Detrend`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Detrended signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import detrend
    >>> np.round(detrend(np.array([1.0, 3.0, 2.0, 4.0])), 12)
    array([-0.3,  0.9, -0.9,  0.3])
    """
    return run_as_function(Detrend(type=type, bp=bp), x, axis, name="detrend")[0]


def savgol_filter(x: ArrayLike, window_length: int, polyorder: int, *, deriv: int = 0,
                  delta: float = 1.0, mode: str = "interp", cval: float = 0.0,
                  axis: int = -1) -> np.ndarray:
    """Savitzky-Golay filter; functional form of :class:`SavgolFilter`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    window_length, polyorder, deriv, delta, mode, cval
        As in :class:`SavgolFilter`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filtered signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import savgol_filter
    >>> np.round(savgol_filter(np.arange(6.0) ** 2, 5, 2), 12)  # exact for a parabola
    array([ 0.,  1.,  4.,  9., 16., 25.])
    """
    est = SavgolFilter(window_length, polyorder, deriv=deriv, delta=delta, mode=mode, cval=cval)
    return run_as_function(est, x, axis, name="savgol_filter")[0]


def median_filter(x: ArrayLike, kernel_size: int = 3, *, axis: int = -1) -> np.ndarray:
    """Running median along ``axis``; functional form of :class:`MedianFilter`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    kernel_size : int, default=3
        Odd window length.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filtered signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import median_filter
    >>> median_filter(np.array([2.0, 80.0, 6.0, 3.0]))
    array([2., 6., 6., 3.])
    """
    return run_as_function(MedianFilter(kernel_size), x, axis, name="median_filter")[0]
