"""Changing the sampling rate: Fourier/polyphase resampling and decimation.

A DataArray's ``time`` coordinate is rebuilt for the new sampling and its
``fs`` attribute, if present, is scaled by the resampling ratio.
"""

from __future__ import annotations

from math import gcd
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import NewAxis, NewLengthSeriesMixin, SeriesTransformer
from ._functional import run_as_function
from ._validation import times_as_float

__all__ = ["Resample", "Decimate", "resample", "decimate"]


def _regular_spacing(times: np.ndarray, name: str) -> float:
    """Spacing of an evenly sampled numeric time axis (datetimes as seconds)."""
    t, _ = times_as_float(times)
    if t.size < 2:
        raise ValueError(f"{name}: cannot infer the sampling step from a single time stamp")
    d = np.diff(t)
    step = (t[-1] - t[0]) / (t.size - 1)
    if step <= 0 or np.abs(d - step).max() > 1e-6 * abs(step):
        raise ValueError(
            f"{name}: the time coordinate is not evenly spaced (steps from {d.min():g} to "
            f"{d.max():g}); put the series on a regular grid first with "
            "sciamba.preprocessing.Interpolate"
        )
    return float(step)


def _new_times(times: Any, n_out: int, ratio: float, name: str) -> np.ndarray | None:
    """Times of ``n_out`` samples starting at ``times[0]`` with step ``step / ratio``."""
    if times is None:
        return None
    step = _regular_spacing(times, name) if np.size(times) > 1 else 1.0
    t, back = times_as_float(times)
    return back(t[0] + np.arange(n_out) * (step / ratio))


class Resample(NewLengthSeriesMixin, SeriesTransformer):
    r"""Change the sampling rate by a rational factor or to a fixed length.

    ``method="fft"`` calls :func:`scipy.signal.resample` (band-limited
    interpolation in the Fourier domain, assumes a periodic signal);
    ``method="poly"`` calls :func:`scipy.signal.resample_poly` (zero-stuff by
    ``up``, FIR anti-alias filter, keep every ``down``-th sample).

    The output length is ``num`` if given, else :math:`\lceil L \cdot up / down \rceil`
    for series of length :math:`L`. A DataArray's ``time`` coordinate is
    rebuilt (same start, new step) and its ``fs`` attribute multiplied by the
    actual ratio (``num / L`` for ``"fft"``, ``up / down`` for ``"poly"``).
    Stateless.

    Parameters
    ----------
    num : int or None, default=None
        Number of output samples. Give either ``num`` or both ``up`` and ``down``.
    up : int or None, default=None
        Upsampling factor.
    down : int or None, default=None
        Downsampling factor.
    method : {"fft", "poly"}, default="fft"
        Fourier resampling or polyphase filtering. With ``"poly"`` and ``num``,
        the ratio ``num / L`` is used, reduced to lowest terms.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    resample : Functional equivalent.
    Decimate : Downsample by an integer factor with an anti-alias filter.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from sciamba.preprocessing import Resample
    >>> da = xr.DataArray(np.zeros((2, 100)), dims=("series", "time"),
    ...                   coords={"time": np.arange(100) / 50.0}, attrs={"fs": 50.0})
    >>> out = Resample(up=2, down=5, method="poly").fit_transform(da)
    >>> out.sizes["time"], out.attrs["fs"], round(float(out["time"][1]), 12)
    (40, 20.0, 0.05)
    """

    _parameter_constraints: dict = {
        "num": [Interval(Integral, 1, None, closed="left"), None],
        "up": [Interval(Integral, 1, None, closed="left"), None],
        "down": [Interval(Integral, 1, None, closed="left"), None],
        "method": [StrOptions({"fft", "poly"})],
    }

    def __init__(self, num: int | None = None, up: int | None = None, down: int | None = None,
                 method: str = "fft") -> None:
        self.num = num
        self.up = up
        self.down = down
        self.method = method

    def _ratio(self, n: int) -> tuple[int, int, int]:
        """``(n_out, up, down)`` for series of length ``n``."""
        if self.num is not None:
            if self.up is not None or self.down is not None:
                raise ValueError("Resample: give either num or (up, down), not both")
            g = gcd(int(self.num), n)
            return int(self.num), int(self.num) // g, n // g
        if self.up is None or self.down is None:
            raise ValueError(
                "Resample: give the output length num, or both up and down (a resampling "
                "ratio of zero or of None is not possible)"
            )
        up, down = int(self.up), int(self.down)
        return -(-n * up // down), up, down

    def _check_config(self, n):
        self._ratio(n)

    def _transform_series(self, x, times):
        n = x.shape[-1]
        n_out, up, down = self._ratio(n)
        if self.method == "fft":
            y = signal.resample(x, n_out, axis=-1)
            ratio = n_out / n
        else:
            y = signal.resample_poly(x, up, down, axis=-1)
            ratio = up / down
        return y, NewAxis("time", _new_times(times, y.shape[-1], ratio, "Resample"), fs_factor=ratio)


class Decimate(NewLengthSeriesMixin, SeriesTransformer):
    """Downsample by an integer factor ``q`` after an anti-aliasing filter.

    Calls :func:`scipy.signal.decimate`: an order-8 Chebyshev type I filter
    (``ftype="iir"``) or a 30-tap FIR filter (``ftype="fir"``), then keeps every
    ``q``-th sample, starting with the first. A DataArray keeps every ``q``-th
    time stamp and has its ``fs`` attribute divided by ``q``. Stateless.

    Parameters
    ----------
    q : int
        Downsampling factor (>= 1). For ``q > 13`` SciPy advises decimating in
        several steps.
    n : int or None, default=None
        Filter order (IIR) or length - 1 (FIR); None uses SciPy's defaults (8, 30).
    ftype : {"iir", "fir"}, default="iir"
        Filter type.
    zero_phase : bool, default=True
        Filter forward-backward (IIR, needs series longer than ``3 * (n + 1)``
        samples) or with a delay-compensated FIR.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    decimate : Functional equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Decimate
    >>> X = np.sin(np.linspace(0, 20, 400))[None, None, :]
    >>> Decimate(4).fit_transform(X).shape
    (1, 1, 100)
    """

    _parameter_constraints: dict = {
        "q": [Interval(Integral, 1, None, closed="left")],
        "n": [Interval(Integral, 1, None, closed="left"), None],
        "ftype": [StrOptions({"iir", "fir"})],
        "zero_phase": ["boolean"],
    }

    def __init__(self, q: int, n: int | None = None, ftype: str = "iir",
                 zero_phase: bool = True) -> None:
        self.q = q
        self.n = n
        self.ftype = ftype
        self.zero_phase = zero_phase

    def _check_config(self, length):
        if self.ftype == "iir" and self.zero_phase:
            order = 8 if self.n is None else int(self.n)
            # filtfilt pads each end with 3 * (number of coefficients) samples.
            edge = 3 * (order + 1)
            if length <= edge:
                raise ValueError(
                    f"Decimate: the zero-phase order-{order} IIR filter pads each end with "
                    f"{edge} samples, so series must be longer than {edge} samples; got "
                    f"{length}. Use ftype='fir', a smaller n, or zero_phase=False"
                )

    def _transform_series(self, x, times):
        self._check_config(x.shape[-1])
        y = signal.decimate(x, int(self.q), n=self.n, ftype=self.ftype, axis=-1,
                            zero_phase=self.zero_phase)
        new_times = None if times is None else np.asarray(times)[:: int(self.q)]
        return y, NewAxis("time", new_times, fs_factor=1.0 / int(self.q))


def resample(x: ArrayLike, num: int | None = None, *, up: int | None = None,
             down: int | None = None, method: str = "fft", axis: int = -1) -> np.ndarray:
    """Resample along ``axis``; functional form of :class:`Resample`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    num, up, down, method
        As in :class:`Resample`.
    axis : int, default=-1
        Time axis (note: :func:`scipy.signal.resample` defaults to ``axis=0``).

    Returns
    -------
    y : ndarray
        Resampled signal.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import resample
    >>> resample(np.ones(10), up=3, down=2, method="poly").shape
    (15,)
    """
    est = Resample(num=num, up=up, down=down, method=method)
    return run_as_function(est, x, axis, name="resample")[0]


def decimate(x: ArrayLike, q: int, *, n: int | None = None, ftype: str = "iir",
             zero_phase: bool = True, axis: int = -1) -> np.ndarray:
    """Anti-alias and downsample; functional form of :class:`Decimate`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    q, n, ftype, zero_phase
        As in :class:`Decimate`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Downsampled signal.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import decimate
    >>> decimate(np.zeros((3, 90)), 3).shape
    (3, 30)
    """
    est = Decimate(q, n=n, ftype=ftype, zero_phase=zero_phase)
    return run_as_function(est, x, axis, name="decimate")[0]
