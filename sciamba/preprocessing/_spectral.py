"""Spectral features: periodogram, Welch's averaged periodogram, spectrogram.

Spectra replace the time axis by a frequency axis (DataArray dimension
``frequency``, coordinate in the units of ``fs``). A spectrogram keeps a time
axis of frames and stacks channels and frequencies into one feature axis,
``(n_series, n_channels * n_freqs, n_frames)``, so a sequence model can run
over the frames.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import NewAxis, NewLengthSeriesMixin, SeriesTransformer
from ._functional import run_as_function
from ._validation import FREQ_DIM, times_as_float

__all__ = [
    "Periodogram", "Welch", "Spectrogram", "periodogram", "welch", "spectrogram",
]

_COMMON = {
    "fs": [Interval(Real, 0, None, closed="neither")],
    "window": [str, tuple, "array-like"],
    "nfft": [Interval(Integral, 1, None, closed="left"), None],
    "detrend": [StrOptions({"constant", "linear"}), "boolean"],
    "scaling": [StrOptions({"density", "spectrum"})],
}


def _check_segments(nperseg: int | None, noverlap: int | None, nfft: int | None, n: int,
                    name: str) -> None:
    # SciPy caps nperseg at the series length (with a warning); check what it will use.
    seg = min(256 if nperseg is None else int(nperseg), n)
    if noverlap is not None and noverlap >= seg:
        raise ValueError(
            f"{name}: noverlap={noverlap} must be less than the segment length {seg} "
            f"(nperseg={nperseg}, series of {n} samples)"
        )
    if nfft is not None and nfft < seg:
        raise ValueError(f"{name}: nfft={nfft} must be >= the segment length {seg}")


class Periodogram(NewLengthSeriesMixin, SeriesTransformer):
    r"""Power spectrum of each series by the (windowed) periodogram.

    Calls :func:`scipy.signal.periodogram` along time. For ``scaling="density"``
    the one-sided estimate is

    .. math:: P(f_k) = \frac{c_k}{f_s \sum_n w_n^2}\Big|\sum_n w_n x_n e^{-2\pi i k n / N}\Big|^2,

    with :math:`c_k = 2` except at DC and Nyquist. Output ``(..., n_freqs)``
    with ``n_freqs = nfft // 2 + 1``; a DataArray gets a ``frequency``
    dimension. Stateless.

    Parameters
    ----------
    fs : float, default=1.0
        Sampling frequency; frequencies are in its units.
    window : str, tuple or array-like, default="boxcar"
        Window, as accepted by :func:`scipy.signal.get_window`.
    nfft : int or None, default=None
        FFT length (zero padding); None: the series length.
    detrend : {"constant", "linear"} or False, default="constant"
        Trend removed before the transform.
    scaling : {"density", "spectrum"}, default="density"
        Power spectral density (V**2/Hz) or power spectrum (V**2).

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    periodogram : Functional equivalent, also returning the frequencies.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Periodogram
    >>> t = np.arange(256) / 64.0
    >>> X = np.sin(2 * np.pi * 8.0 * t)[None, :]
    >>> P = Periodogram(fs=64.0).fit_transform(X)
    >>> P.shape, float(np.argmax(P[0]) * 64.0 / 256)
    ((1, 129), 8.0)
    """

    _parameter_constraints: dict = dict(_COMMON)

    def __init__(self, fs: float = 1.0, window: str | tuple | ArrayLike = "boxcar",
                 nfft: int | None = None, detrend: str | bool = "constant",
                 scaling: str = "density") -> None:
        self.fs = fs
        self.window = window
        self.nfft = nfft
        self.detrend = detrend
        self.scaling = scaling

    def _transform_series(self, x, times):
        f, p = signal.periodogram(x, fs=self.fs, window=self.window, nfft=self.nfft,
                                  detrend=self.detrend, scaling=self.scaling, axis=-1)
        return p, NewAxis(FREQ_DIM, f)


class Welch(NewLengthSeriesMixin, SeriesTransformer):
    """Power spectrum of each series by Welch's method (averaged periodograms).

    Calls :func:`scipy.signal.welch` along time: the series is cut into
    segments of ``nperseg`` samples overlapping by ``noverlap``, each is
    windowed and its periodogram taken, and the periodograms are averaged
    (mean or median), trading frequency resolution for variance. Stateless.

    Parameters
    ----------
    fs : float, default=1.0
        Sampling frequency.
    window : str, tuple or array-like, default="hann"
        Window (periodic Hann by default, as in SciPy).
    nperseg : int or None, default=None
        Segment length; None: 256, capped by SciPy at the series length.
    noverlap : int or None, default=None
        Overlap; None: ``nperseg // 2``.
    nfft : int or None, default=None
        FFT length; None: ``nperseg``.
    detrend : {"constant", "linear"} or False, default="constant"
        Trend removed from each segment.
    scaling : {"density", "spectrum"}, default="density"
        Power spectral density or power spectrum.
    average : {"mean", "median"}, default="mean"
        How segment periodograms are combined.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    welch : Functional equivalent, also returning the frequencies.

    References
    ----------
    .. [1] P. Welch, "The use of the fast Fourier transform for the estimation
       of power spectra", IEEE Trans. Audio Electroacoust. 15(2), pp. 70-73, 1967.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Welch
    >>> X = np.random.default_rng(0).standard_normal((4, 3, 1024))
    >>> Welch(fs=2.0, nperseg=128).fit_transform(X).shape
    (4, 3, 65)
    """

    _parameter_constraints: dict = {
        **_COMMON,
        "nperseg": [Interval(Integral, 1, None, closed="left"), None],
        "noverlap": [Interval(Integral, 0, None, closed="left"), None],
        "average": [StrOptions({"mean", "median"})],
    }

    def __init__(self, fs: float = 1.0, window: str | tuple | ArrayLike = "hann",
                 nperseg: int | None = None, noverlap: int | None = None,
                 nfft: int | None = None, detrend: str | bool = "constant",
                 scaling: str = "density", average: str = "mean") -> None:
        self.fs = fs
        self.window = window
        self.nperseg = nperseg
        self.noverlap = noverlap
        self.nfft = nfft
        self.detrend = detrend
        self.scaling = scaling
        self.average = average

    def _check_config(self, n):
        _check_segments(self.nperseg, self.noverlap, self.nfft, n, "Welch")

    def _transform_series(self, x, times):
        self._check_config(x.shape[-1])
        f, p = signal.welch(x, fs=self.fs, window=self.window, nperseg=self.nperseg,
                            noverlap=self.noverlap, nfft=self.nfft, detrend=self.detrend,
                            scaling=self.scaling, axis=-1, average=self.average)
        return p, NewAxis(FREQ_DIM, f)


class Spectrogram(SeriesTransformer):
    """Short-time power spectra as a sequence of frames.

    Calls :func:`scipy.signal.spectrogram` along time and stacks channels and
    frequencies into features: ``(n_series, n_times)`` becomes
    ``(n_series, n_freqs, n_frames)`` and ``(n_series, n_channels, n_times)``
    becomes ``(n_series, n_channels * n_freqs, n_frames)``, channel-major
    (feature ``c * n_freqs + k`` is channel ``c`` at frequency ``k``). A
    DataArray gets a ``time`` coordinate at the frame centres (offset by the
    first time stamp) and, for 3-D input, a ``feature`` dimension indexed by
    ``(channel, frequency)``. Output is 3-D, so there is no ``set_output``.
    Stateless.

    Parameters
    ----------
    fs : float, default=1.0
        Sampling frequency.
    window : str, tuple or array-like, default=("tukey", 0.25)
        Window (SciPy's default).
    nperseg : int or None, default=None
        Frame length; None: 256, capped at the series length.
    noverlap : int or None, default=None
        Overlap between frames; None: ``nperseg // 8``.
    nfft : int or None, default=None
        FFT length; None: ``nperseg``.
    detrend : {"constant", "linear"} or False, default="constant"
        Trend removed from each frame.
    scaling : {"density", "spectrum"}, default="density"
        Power spectral density or power spectrum.
    mode : {"psd", "magnitude", "angle", "phase"}, default="psd"
        Quantity computed per frame, as in :func:`scipy.signal.spectrogram`.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    spectrogram : Functional equivalent, returning frequencies, frame times and
        the unstacked spectrogram.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Spectrogram
    >>> X = np.random.default_rng(0).standard_normal((5, 2, 1000))
    >>> Spectrogram(fs=100.0, nperseg=64, noverlap=32).fit_transform(X).shape
    (5, 66, 30)
    """

    _parameter_constraints: dict = {
        **_COMMON,
        "nperseg": [Interval(Integral, 1, None, closed="left"), None],
        "noverlap": [Interval(Integral, 0, None, closed="left"), None],
        "mode": [StrOptions({"psd", "magnitude", "angle", "phase"})],
    }

    def __init__(self, fs: float = 1.0, window: str | tuple | ArrayLike = ("tukey", 0.25),
                 nperseg: int | None = None, noverlap: int | None = None,
                 nfft: int | None = None, detrend: str | bool = "constant",
                 scaling: str = "density", mode: str = "psd") -> None:
        self.fs = fs
        self.window = window
        self.nperseg = nperseg
        self.noverlap = noverlap
        self.nfft = nfft
        self.detrend = detrend
        self.scaling = scaling
        self.mode = mode

    def _check_config(self, n):
        _check_segments(self.nperseg, self.noverlap, self.nfft, n, "Spectrogram")

    def _spectrogram(self, x):
        self._check_config(x.shape[-1])
        return signal.spectrogram(x, fs=self.fs, window=self.window, nperseg=self.nperseg,
                                  noverlap=self.noverlap, nfft=self.nfft, detrend=self.detrend,
                                  scaling=self.scaling, axis=-1, mode=self.mode)

    def _transform_series(self, x, times):
        f, t, s = self._spectrogram(x)  # s: (n_series, [C,] n_freqs, n_frames)
        out = s.reshape(x.shape[0], -1, s.shape[-1])  # (n_series, C*n_freqs, n_frames)
        frames = t
        if times is not None:
            tf, back = times_as_float(times)
            frames = back(tf.reshape(-1)[0] + t)
        return out, NewAxis("spectrogram", (f, frames))


def periodogram(x: ArrayLike, fs: float = 1.0, *, window: str | tuple | ArrayLike = "boxcar",
                nfft: int | None = None, detrend: str | bool = "constant",
                scaling: str = "density", axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Periodogram along ``axis``; functional form of :class:`Periodogram`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    fs, window, nfft, detrend, scaling
        As in :class:`Periodogram`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    f : ndarray
        Frequencies.
    Pxx : ndarray
        Power spectra, ``axis`` now over ``f``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import periodogram
    >>> f, P = periodogram(np.cos(np.pi * np.arange(8) / 2), fs=1.0, scaling="spectrum")
    >>> f[np.argmax(P)]
    np.float64(0.25)
    """
    est = Periodogram(fs=fs, window=window, nfft=nfft, detrend=detrend, scaling=scaling)
    p, ax = run_as_function(est, x, axis, name="periodogram")
    return ax.values, p


def welch(x: ArrayLike, fs: float = 1.0, *, window: str | tuple | ArrayLike = "hann",
          nperseg: int | None = None, noverlap: int | None = None, nfft: int | None = None,
          detrend: str | bool = "constant", scaling: str = "density", average: str = "mean",
          axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum along ``axis``; functional form of :class:`Welch`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    fs, window, nperseg, noverlap, nfft, detrend, scaling, average
        As in :class:`Welch`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    f : ndarray
        Frequencies.
    Pxx : ndarray
        Power spectra, ``axis`` now over ``f``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import welch
    >>> f, P = welch(np.random.default_rng(0).standard_normal(4096), fs=10.0, nperseg=256)
    >>> f.shape, P.shape
    ((129,), (129,))
    """
    est = Welch(fs=fs, window=window, nperseg=nperseg, noverlap=noverlap, nfft=nfft,
                detrend=detrend, scaling=scaling, average=average)
    p, ax = run_as_function(est, x, axis, name="welch")
    return ax.values, p


def spectrogram(x: ArrayLike, fs: float = 1.0, *,
                window: str | tuple | ArrayLike = ("tukey", 0.25), nperseg: int | None = None,
                noverlap: int | None = None, nfft: int | None = None,
                detrend: str | bool = "constant", scaling: str = "density", mode: str = "psd",
                axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectrogram along ``axis``, as :func:`scipy.signal.spectrogram` returns it.

    Same computation as :class:`Spectrogram`, without stacking channels and
    frequencies.

    Parameters
    ----------
    x : array_like
        Signal(s).
    fs, window, nperseg, noverlap, nfft, detrend, scaling, mode
        As in :class:`Spectrogram`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    f : ndarray
        Frequencies.
    t : ndarray
        Frame centres, in units of ``1/fs`` from the first sample.
    Sxx : ndarray
        Spectrogram in SciPy's layout: frequencies along ``axis``, frames last.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import spectrogram
    >>> f, t, S = spectrogram(np.zeros(1000), fs=100.0, nperseg=100, noverlap=50)
    >>> S.shape
    (51, 19)
    """
    est = Spectrogram(fs=fs, window=window, nperseg=nperseg, noverlap=noverlap, nfft=nfft,
                      detrend=detrend, scaling=scaling, mode=mode)
    est._validate_params()
    from ._validation import as_float_series

    ndim = np.ndim(x)
    xt = as_float_series(x, axis=axis, name="spectrogram")
    f, t, s = est._spectrogram(xt)  # s: (..., n_freqs, n_frames)
    # SciPy's layout: frequencies where time was, frames last.
    return f, t, np.moveaxis(s, -2, axis % ndim)
