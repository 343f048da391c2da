"""IIR filtering in second-order sections: Butterworth, notch, any designed SOS.

All three run through :func:`sos_apply`, which filters with
:func:`scipy.signal.sosfiltfilt` (zero phase, forward and backward) or
:func:`scipy.signal.sosfilt` (causal, one pass).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import OneToOneSeriesMixin, SeriesTransformer
from ._functional import run_as_function

__all__ = ["Butterworth", "SOSFilter", "Notch", "butterworth", "sos_filter", "notch"]

_PAD_CONSTRAINTS = {
    "zero_phase": ["boolean"],
    "padtype": [StrOptions({"odd", "even", "constant"}), None],
    "padlen": [Interval(Integral, 0, None, closed="left"), None],
}


def _default_padlen(sos: np.ndarray) -> int:
    # The edge length sosfiltfilt uses when padlen is None: three times the
    # number of taps of the cascade, less the trailing zeros of first-order sections.
    n_sections = sos.shape[0]
    trailing = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * n_sections + 1 - trailing)


def sos_apply(
    sos: np.ndarray,
    x: np.ndarray,
    *,
    zero_phase: bool,
    padtype: str | None,
    padlen: int | None,
    name: str,
) -> np.ndarray:
    """Filter ``x`` (time last) with second-order sections ``sos``."""
    if not zero_phase:
        return signal.sosfilt(sos, x, axis=-1)
    edge = 0 if padtype is None else (_default_padlen(sos) if padlen is None else padlen)
    n = x.shape[-1]
    if n <= edge:
        raise ValueError(
            f"{name}: zero-phase filtering pads each end of a series with {edge} samples, "
            f"so series must be longer than {edge} samples (at least {edge + 1}); got {n}. "
            "Use longer series, a lower filter order, a smaller padlen, or zero_phase=False"
        )
    return signal.sosfiltfilt(sos, x, axis=-1, padtype=padtype, padlen=edge)


def _check_sos(sos: Any, name: str) -> np.ndarray:
    # A copy: sosfilt needs a writable buffer, and a user's array may be read-only.
    sos = np.array(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] == 0:
        raise ValueError(
            f"{name}: sos must have shape (n_sections, 6) with n_sections >= 1, got {sos.shape}; "
            "design one with e.g. scipy.signal.butter(..., output='sos')"
        )
    if not np.isfinite(sos).all():
        raise ValueError(f"{name}: sos contains NaN or inf")
    if not np.all(sos[:, 3] == 1.0):
        raise ValueError(
            f"{name}: every section must be normalized so that a0 = sos[:, 3] = 1; "
            "divide each row by its a0"
        )
    # An unstable section makes the output grow without bound: refuse it.
    for k, (_, a1, a2) in enumerate(sos[:, 3:]):
        radius = np.abs(np.roots([1.0, a1, a2])).max(initial=0.0)
        if radius >= 1.0:
            raise ValueError(
                f"{name}: section {k} has a pole at |z|={radius:.6g} >= 1, so the filter is "
                "unstable; check the design (e.g. use output='sos' rather than converting "
                "high-order (b, a) coefficients)"
            )
    return sos


def _check_frequency(f: float, fs: float, what: str, name: str) -> None:
    nyq = fs / 2.0
    if not 0 < f < nyq:
        raise ValueError(
            f"{name}: {what}={f:g} must lie strictly between 0 and the Nyquist frequency "
            f"fs/2={nyq:g} (fs={fs:g}); it is at or above Nyquist, so lower it or raise fs"
            if f >= nyq
            else f"{name}: {what}={f:g} must be > 0"
        )


def butter_sos(cutoff: Any, btype: str, order: int, fs: float, name: str) -> np.ndarray:
    """Design a Butterworth filter as second-order sections, with clear errors."""
    c = np.asarray(cutoff, dtype=np.float64)
    if btype in ("lowpass", "highpass"):
        if c.ndim != 0:
            raise ValueError(
                f"{name}: btype={btype!r} takes one cutoff frequency, got {cutoff!r}; "
                "use btype='bandpass' or 'bandstop' for a band"
            )
        edges = [float(c)]
    else:
        if c.shape != (2,):
            raise ValueError(
                f"{name}: btype={btype!r} takes two band edges (low, high), got {cutoff!r}"
            )
        if not c[0] < c[1]:
            raise ValueError(
                f"{name}: band edges must be in increasing order (low, high); got "
                f"cutoff=({c[0]:g}, {c[1]:g}). Swap them"
            )
        edges = [float(v) for v in c]
    for e in edges:
        _check_frequency(e, fs, "cutoff", name)
    return signal.butter(order, edges if len(edges) == 2 else edges[0], btype=btype,
                         output="sos", fs=fs)


class _SOSBase(OneToOneSeriesMixin, SeriesTransformer):
    """Shared transform of the SOS filters; subclasses design ``sos``."""

    def _sos(self) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _check_config(self, n_times):
        self._sos()

    def _transform_series(self, x, times):
        y = sos_apply(self._sos(), x, zero_phase=self.zero_phase, padtype=self.padtype,
                      padlen=self.padlen, name=type(self).__name__)
        return y, None


class Butterworth(_SOSBase):
    r"""Butterworth low-, high-, band-pass or band-stop filter along time.

    Designs ``scipy.signal.butter(order, cutoff, btype, fs=fs, output="sos")``
    and applies it with :func:`scipy.signal.sosfiltfilt` (``zero_phase=True``:
    forward and backward, no phase shift, squared magnitude response) or
    :func:`scipy.signal.sosfilt` (causal). The Butterworth magnitude response of
    order :math:`N` is maximally flat,

    .. math:: |H(j\omega)|^2 = \frac{1}{1 + (\omega/\omega_c)^{2N}} .

    Stateless: ``fit`` only validates.

    Parameters
    ----------
    cutoff : float or (float, float)
        Cutoff frequency in the units of ``fs`` (Hz if ``fs`` is in Hz); a pair
        ``(low, high)`` for ``"bandpass"`` and ``"bandstop"``. Must lie in
        ``(0, fs/2)``.
    btype : {"lowpass", "highpass", "bandpass", "bandstop"}, default="lowpass"
        Filter type.
    order : int, default=4
        Filter order (per pass; the zero-phase filter has twice the attenuation).
    fs : float, default=1.0
        Sampling frequency of the series. A DataArray with an ``fs`` attribute
        must agree with it.
    zero_phase : bool, default=True
        Filter forward and backward (``sosfiltfilt``) or once (``sosfilt``).
    padtype : {"odd", "even", "constant"} or None, default="odd"
        Edge extension for the zero-phase filter, as in ``sosfiltfilt``.
    padlen : int or None, default=None
        Number of samples to extend each end with; None uses ``sosfiltfilt``'s
        default (three times the number of filter taps). Series must be longer.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``: time steps of 2-D input, channels of 3-D.

    See Also
    --------
    butterworth : Functional equivalent.
    SOSFilter : Apply any filter designed in second-order sections.

    References
    ----------
    .. [1] S. Butterworth, "On the Theory of Filter Amplifiers", Wireless
       Engineer 7, pp. 536-541, 1930.
    .. [2] F. Gustafsson, "Determining the initial states in forward-backward
       filtering", IEEE Trans. Signal Processing 44(4), pp. 988-992, 1996.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Butterworth
    >>> t = np.arange(1000) / 100.0
    >>> X = np.sin(2 * np.pi * 1.0 * t) + np.sin(2 * np.pi * 30.0 * t)
    >>> Xt = Butterworth(cutoff=5.0, fs=100.0).fit_transform(X[None, :])
    >>> Xt.shape
    (1, 1000)
    >>> bool(np.abs(Xt[0, 200:800] - np.sin(2 * np.pi * t[200:800])).max() < 1e-2)
    True
    """

    _parameter_constraints: dict = {
        "cutoff": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "btype": [StrOptions({"lowpass", "highpass", "bandpass", "bandstop"})],
        "order": [Interval(Integral, 1, None, closed="left")],
        "fs": [Interval(Real, 0, None, closed="neither")],
        **_PAD_CONSTRAINTS,
    }

    def __init__(self, cutoff: float | ArrayLike, btype: str = "lowpass", order: int = 4,
                 fs: float = 1.0, zero_phase: bool = True, padtype: str | None = "odd",
                 padlen: int | None = None) -> None:
        self.cutoff = cutoff
        self.btype = btype
        self.order = order
        self.fs = fs
        self.zero_phase = zero_phase
        self.padtype = padtype
        self.padlen = padlen

    def _sos(self) -> np.ndarray:
        return butter_sos(self.cutoff, self.btype, self.order, self.fs, type(self).__name__)


class SOSFilter(_SOSBase):
    """Apply a filter given as second-order sections along time.

    For filters designed elsewhere, e.g. ``scipy.signal.cheby2(...,
    output="sos")`` or ``scipy.signal.ellip``. Stateless.

    Parameters
    ----------
    sos : array-like of shape (n_sections, 6)
        Second-order sections ``[b0, b1, b2, a0, a1, a2]`` with ``a0 = 1``.
    zero_phase : bool, default=True
        ``sosfiltfilt`` (forward-backward) or ``sosfilt`` (causal).
    padtype : {"odd", "even", "constant"} or None, default="odd"
        Edge extension of the zero-phase filter.
    padlen : int or None, default=None
        Extension length; None uses ``sosfiltfilt``'s default.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    sos_filter : Functional equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import signal
    >>> from sciamba.preprocessing import SOSFilter
    >>> sos = signal.cheby2(4, 40, 0.2, output="sos")
    >>> X = np.random.default_rng(0).standard_normal((3, 2, 200))
    >>> np.allclose(SOSFilter(sos).fit_transform(X), signal.sosfiltfilt(sos, X))
    True
    """

    _parameter_constraints: dict = {"sos": ["array-like"], **_PAD_CONSTRAINTS}

    def __init__(self, sos: ArrayLike, zero_phase: bool = True, padtype: str | None = "odd",
                 padlen: int | None = None) -> None:
        self.sos = sos
        self.zero_phase = zero_phase
        self.padtype = padtype
        self.padlen = padlen

    def _sos(self) -> np.ndarray:
        return _check_sos(self.sos, type(self).__name__)


class Notch(_SOSBase):
    r"""Second-order IIR notch filter, e.g. for 50/60 Hz mains hum in an ECG.

    Designs ``b, a = scipy.signal.iirnotch(freq, quality, fs=fs)`` (zeros on
    the unit circle at ``freq``, -3 dB bandwidth ``freq / quality``), converts
    it to one second-order section and filters like :class:`SOSFilter`.
    Stateless.

    Parameters
    ----------
    freq : float
        Frequency to remove, in ``(0, fs/2)``.
    quality : float, default=30.0
        Quality factor :math:`Q = f_0 / \Delta f`.
    fs : float, default=1.0
        Sampling frequency.
    zero_phase : bool, default=True
        Forward-backward (``sosfiltfilt``) or causal (``sosfilt``).
    padtype : {"odd", "even", "constant"} or None, default="odd"
        Edge extension of the zero-phase filter.
    padlen : int or None, default=None
        Extension length; None uses ``sosfiltfilt``'s default.

    Attributes
    ----------
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    notch : Functional equivalent.

    References
    ----------
    .. [1] Sophocles J. Orfanidis, "Introduction To Signal Processing",
       Prentice-Hall, 1996.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Notch
    >>> fs = 360.0
    >>> t = np.arange(3600) / fs
    >>> ecg_like = np.sin(2 * np.pi * 1.2 * t)
    >>> X = (ecg_like + 0.5 * np.sin(2 * np.pi * 60.0 * t))[None, :]
    >>> Xt = Notch(freq=60.0, quality=30.0, fs=fs).fit_transform(X)
    >>> bool(np.abs(Xt[0, 500:-500] - ecg_like[500:-500]).max() < 0.05)
    True
    """

    _parameter_constraints: dict = {
        "freq": [Interval(Real, 0, None, closed="neither")],
        "quality": [Interval(Real, 0, None, closed="neither")],
        "fs": [Interval(Real, 0, None, closed="neither")],
        **_PAD_CONSTRAINTS,
    }

    def __init__(self, freq: float, quality: float = 30.0, fs: float = 1.0,
                 zero_phase: bool = True, padtype: str | None = "odd",
                 padlen: int | None = None) -> None:
        self.freq = freq
        self.quality = quality
        self.fs = fs
        self.zero_phase = zero_phase
        self.padtype = padtype
        self.padlen = padlen

    def _sos(self) -> np.ndarray:
        _check_frequency(float(self.freq), float(self.fs), "freq", type(self).__name__)
        b, a = signal.iirnotch(self.freq, self.quality, fs=self.fs)
        return signal.tf2sos(b, a)


def butterworth(x: ArrayLike, cutoff: float | ArrayLike, *, btype: str = "lowpass",
                order: int = 4, fs: float = 1.0, zero_phase: bool = True,
                padtype: str | None = "odd", padlen: int | None = None,
                axis: int = -1) -> np.ndarray:
    """Butterworth-filter ``x`` along ``axis``; functional form of :class:`Butterworth`.

    Parameters
    ----------
    x : array_like
        Signal(s); any shape.
    cutoff, btype, order, fs, zero_phase, padtype, padlen
        As in :class:`Butterworth`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filtered signal, same shape as ``x`` (float64).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import signal
    >>> from sciamba.preprocessing import butterworth
    >>> x = np.random.default_rng(0).standard_normal(500)
    >>> sos = signal.butter(4, 10.0, fs=100.0, output="sos")
    >>> np.allclose(butterworth(x, 10.0, fs=100.0), signal.sosfiltfilt(sos, x))
    True
    """
    est = Butterworth(cutoff, btype=btype, order=order, fs=fs, zero_phase=zero_phase,
                      padtype=padtype, padlen=padlen)
    return run_as_function(est, x, axis, name="butterworth")[0]


def sos_filter(x: ArrayLike, sos: ArrayLike, *, zero_phase: bool = True,
               padtype: str | None = "odd", padlen: int | None = None,
               axis: int = -1) -> np.ndarray:
    """Filter ``x`` with second-order sections; functional form of :class:`SOSFilter`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    sos, zero_phase, padtype, padlen
        As in :class:`SOSFilter`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filtered signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import signal
    >>> from sciamba.preprocessing import sos_filter
    >>> sos = signal.ellip(4, 1, 40, 0.3, output="sos")
    >>> x = np.random.default_rng(1).standard_normal((100, 2))
    >>> np.allclose(sos_filter(x, sos, zero_phase=False, axis=0), signal.sosfilt(sos, x, axis=0))
    True
    """
    est = SOSFilter(sos, zero_phase=zero_phase, padtype=padtype, padlen=padlen)
    return run_as_function(est, x, axis, name="sos_filter")[0]


def notch(x: ArrayLike, freq: float, *, quality: float = 30.0, fs: float = 1.0,
          zero_phase: bool = True, padtype: str | None = "odd", padlen: int | None = None,
          axis: int = -1) -> np.ndarray:
    """Remove one frequency with an IIR notch; functional form of :class:`Notch`.

    Parameters
    ----------
    x : array_like
        Signal(s).
    freq, quality, fs, zero_phase, padtype, padlen
        As in :class:`Notch`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    y : ndarray
        Filtered signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import notch
    >>> t = np.arange(5000) / 500.0
    >>> y = notch(np.sin(2 * np.pi * 50.0 * t), 50.0, fs=500.0)
    >>> bool(np.abs(y[1000:-1000]).max() < 0.01)
    True
    """
    est = Notch(freq, quality=quality, fs=fs, zero_phase=zero_phase, padtype=padtype,
                padlen=padlen)
    return run_as_function(est, x, axis, name="notch")[0]
