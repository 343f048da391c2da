"""``scipy.signal`` preprocessing as scikit-learn transformers.

Every transformer takes series with time as the last axis, as ``scipy.signal``
does: ``(n_series, n_times)``, ``(n_series, n_channels, n_times)``, or an
:class:`xarray.DataArray` with a ``time`` dimension (moved last; coordinates
and attributes are kept, the ``time`` coordinate and an ``fs`` attribute follow
any change of sampling -- other coordinates along ``time`` are dropped then --
and spectra get a ``frequency`` dimension). Each has a
functional equivalent for scripts that runs the same code, with an ``axis``
argument.

``n_features_in_`` follows scikit-learn: ``X.shape[1]`` in ``fit``, i.e. the
number of time steps of 2-D input and the number of channels of 3-D input; a
fitted transformer checks it again in ``transform``. Stateless transformers
(all but ``Standardize(per_series=False)``) need no ``fit`` at all.

Filtering
=========

==================  ==================  ==========================================
``Butterworth``     ``butterworth``     ``butter(output="sos")`` + ``sosfiltfilt``/``sosfilt``
``SOSFilter``       ``sos_filter``      any filter in second-order sections
``Notch``           ``notch``           ``iirnotch`` (mains hum)
``Detrend``         ``detrend``         ``detrend`` (constant, piecewise linear)
``SavgolFilter``    ``savgol_filter``   ``savgol_filter``
``MedianFilter``    ``median_filter``   ``medfilt`` along time
==================  ==================  ==========================================

Sampling and scaling
====================

==================  ======================  ======================================
``Resample``        ``resample``            ``resample`` / ``resample_poly``
``Decimate``        ``decimate``            ``decimate``
``Standardize``     ``standardize``         mean/std or median/IQR, invertible
``Interpolate``     ``interpolate_series``  irregular times onto a regular grid
``FillMissing``     ``fill_missing``        NaN gaps: linear, forward fill, zero
==================  ======================  ======================================

Spectral features
=================

==================  ==================  ==========================================
``Periodogram``     ``periodogram``     ``periodogram``, ``frequency`` axis
``Welch``           ``welch``           ``welch``, ``frequency`` axis
``Spectrogram``     ``spectrogram``     ``spectrogram``, frames as the time axis
``LombScargle``     ``lomb_scargle``    ``lombscargle`` for irregular ``times``
==================  ==================  ==========================================

Examples
--------
>>> import numpy as np
>>> from sklearn.pipeline import make_pipeline
>>> from sciamba.preprocessing import Butterworth, Notch, Standardize
>>> X = np.random.default_rng(0).standard_normal((8, 2, 720))  # 8 ECGs, 2 leads, 2 s
>>> pipe = make_pipeline(Notch(60.0, fs=360.0), Butterworth((0.5, 40.0), "bandpass", fs=360.0),
...                      Standardize())
>>> pipe.fit_transform(X).shape
(8, 2, 720)
"""

from ._filters import Butterworth, Notch, SOSFilter, butterworth, notch, sos_filter
from ._irregular import (
    FillMissing,
    Interpolate,
    LombScargle,
    fill_missing,
    interpolate_series,
    lomb_scargle,
)
from ._resampling import Decimate, Resample, decimate, resample
from ._scaling import Standardize, standardize
from ._smoothing import Detrend, MedianFilter, SavgolFilter, detrend, median_filter, savgol_filter
from ._spectral import Periodogram, Spectrogram, Welch, periodogram, spectrogram, welch

__all__ = [
    "Butterworth",
    "SOSFilter",
    "Notch",
    "Detrend",
    "SavgolFilter",
    "MedianFilter",
    "Resample",
    "Decimate",
    "Standardize",
    "Periodogram",
    "Welch",
    "Spectrogram",
    "LombScargle",
    "Interpolate",
    "FillMissing",
    "butterworth",
    "sos_filter",
    "notch",
    "detrend",
    "savgol_filter",
    "median_filter",
    "resample",
    "decimate",
    "standardize",
    "periodogram",
    "welch",
    "spectrogram",
    "lomb_scargle",
    "interpolate_series",
    "fill_missing",
]
