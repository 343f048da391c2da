"""Standardization of series, plain (mean/std) or robust (median/IQR)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import OneToOneSeriesMixin, SeriesTransformer, rewrap
from ._functional import run_as_function
from ._validation import check_series, unwrap

__all__ = ["Standardize", "standardize"]


def location_scale(
    x: np.ndarray, axes: tuple[int, ...], *, center: str, scale: str, with_mean: bool,
    with_std: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Center and scale of ``x`` over ``axes`` (kept as length-1 axes).

    A scale of zero (a constant series; or an interquartile range of zero)
    becomes 1, as in scikit-learn's scalers, so constant series map to 0
    instead of NaN. Constancy is tested exactly (peak-to-peak of 0) because the
    standard deviation of equal floats is not always exactly 0.

    NaN (a missing sample) is left out of every statistic, as scikit-learn's
    scalers do; where nothing is observed the center and scale are NaN.
    """
    if np.isnan(x).any():
        mean, median, std, pct, mx, mn = (np.nanmean, np.nanmedian, np.nanstd, np.nanpercentile,
                                          np.nanmax, np.nanmin)
    else:  # the plain reductions are much faster than the NaN-aware ones
        mean, median, std, pct, mx, mn = np.mean, np.median, np.std, np.percentile, np.max, np.min
    with warnings.catch_warnings():
        # All-NaN series warn; their NaN statistics are the answer. Only those
        # warnings are silenced (an overflow, say, still warns).
        warnings.filterwarnings("ignore", "Mean of empty slice|All-NaN slice|Degrees of freedom",
                                RuntimeWarning)
        top = mx(x, axis=axes, keepdims=True)
        constant = top - mn(x, axis=axes, keepdims=True) == 0
        if with_mean:
            c = (mean if center == "mean" else median)(x, axis=axes, keepdims=True)
            # The mean of equal floats can be off by an ulp; a constant maps to exactly 0.
            c = np.where(constant, top, c)
        else:
            c = np.zeros([1 if i in axes else n for i, n in enumerate(x.shape)])
        if with_std:
            if scale == "std":
                s = std(x, axis=axes, keepdims=True)
            else:
                q75, q25 = pct(x, [75.0, 25.0], axis=axes, keepdims=True)
                s = q75 - q25
            s = np.where(constant | (s == 0), 1.0, s)
        else:
            s = np.ones_like(c)
    if with_std:
        s = np.where(np.isnan(top), np.nan, s)  # nothing observed: no scale either
    return c, s


class Standardize(OneToOneSeriesMixin, SeriesTransformer):
    r"""Standardize series: :math:`(x - \mathrm{center}) / \mathrm{scale}`, with an exact inverse.

    Plain: center = mean, scale = standard deviation (``ddof=0``). Robust
    (``center="median", scale="iqr"``): center = median, scale = interquartile
    range :math:`q_{75} - q_{25}`, insensitive to spikes and outliers. A scale
    of zero (constant series) is replaced by 1.

    ``per_series=True`` (z-normalization, the usual choice for time series
    classification): each series and channel is scaled by its own statistics,
    computed from the very data given to ``transform`` (so ``transform`` needs no
    fit). ``fit`` records the statistics of the series it saw, and
    ``inverse_transform`` maps *those same series* back -- e.g. forecasts of
    the fitted series return to physical units; it therefore needs the same
    number of series as ``fit``.

    ``per_series=False``: one center and scale per channel, learned over all
    series and time steps in ``fit`` and applied to new data (2-D input is one
    channel).

    NaN marks a missing sample (the estimators' convention for padding and
    gaps): it is left out of the statistics and stays NaN in the output, as
    with scikit-learn's scalers, so NaN-padded series of unequal length can
    be standardized before a :class:`sciamba.MambaClassifier`. With
    ``per_series=True`` a series with no observed sample comes back all NaN;
    with ``per_series=False`` a channel with none in ``fit`` is an error.

    Parameters
    ----------
    per_series : bool, default=True
        Statistics per series (and channel), or per channel over the training set.
    with_mean : bool, default=True
        Subtract the center; if False the center is 0.
    with_std : bool, default=True
        Divide by the scale; if False the scale is 1.
    center : {"mean", "median"}, default="mean"
        Location statistic.
    scale : {"std", "iqr"}, default="std"
        Scale statistic.

    Attributes
    ----------
    center_ : ndarray
        Centers learned in ``fit``: shape ``(n_series,)`` / ``(n_series, n_channels)``
        with ``per_series=True`` for 2-D / 3-D input; ``(1,)`` / ``(n_channels,)``
        with ``per_series=False``.
    scale_ : ndarray
        Scales, same shape as ``center_``.
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit``.

    See Also
    --------
    standardize : Functional equivalent (per series).
    sklearn.preprocessing.StandardScaler, sklearn.preprocessing.RobustScaler :
        Per-column scalers for tabular data.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import Standardize
    >>> X = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    >>> sc = Standardize().fit(X)
    >>> Z = sc.transform(X)
    >>> np.allclose(Z[0], Z[1]), np.allclose(sc.inverse_transform(Z), X)
    (True, True)
    >>> forecast = np.array([[0.0, 1.0], [0.0, 1.0]])  # horizon 2, standardized units
    >>> sc.inverse_transform(forecast)
    array([[ 2.5       ,  3.61803399],
           [25.        , 36.18033989]])
    """

    _allow_nan = True

    _parameter_constraints: dict = {
        "per_series": ["boolean"],
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
        "center": [StrOptions({"mean", "median"})],
        "scale": [StrOptions({"std", "iqr"})],
    }

    def __init__(self, per_series: bool = True, with_mean: bool = True, with_std: bool = True,
                 center: str = "mean", scale: str = "std") -> None:
        self.per_series = per_series
        self.with_mean = with_mean
        self.with_std = with_std
        self.center = center
        self.scale = scale

    @property
    def _stateless(self) -> bool:  # type: ignore[override]
        # Per-series scaling of new data uses that data's own statistics.
        return bool(self.per_series)

    def _stats(self, x: np.ndarray, per_series: bool) -> tuple[np.ndarray, np.ndarray]:
        if per_series:
            axes: tuple[int, ...] = (x.ndim - 1,)
        else:  # everything but the channel axis
            axes = (0, 2) if x.ndim == 3 else (0, 1)
        return location_scale(x, axes, center=self.center, scale=self.scale,
                              with_mean=self.with_mean, with_std=self.with_std)

    def _fit_series(self, x, times):
        c, s = self._stats(x, self.per_series)
        if not self.per_series and np.isnan(c).any():
            # Pooled statistics are applied to new data: a channel never observed
            # here would turn every later transform of it into NaN.
            raise ValueError(
                f"Standardize(per_series=False): channel(s) {np.flatnonzero(np.isnan(c)).tolist()} "
                "have no observed sample (all NaN) in fit, so they have no center or scale; "
                "drop them or fill them first (sciamba.preprocessing.FillMissing)"
            )
        if self.per_series:
            self.center_, self.scale_ = c[..., 0], s[..., 0]  # (n_series,) or (n_series, C)
        else:
            self.center_, self.scale_ = c.reshape(-1), s.reshape(-1)  # (1,) or (C,)
        self._fitted_per_series = bool(self.per_series)

    def _transform_series(self, x, times):
        if self.per_series:
            c, s = self._stats(x, True)
        else:
            c, s = self._broadcast_fitted(x, "transform")
        return (x - c) / s, None

    def _broadcast_fitted(self, x: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        """Fitted statistics shaped to broadcast against ``x`` (time last)."""
        if x.ndim != self._n_dims_in:
            raise ValueError(
                f"Standardize was fitted on {self._n_dims_in}-D data; {what} got {x.ndim}-D"
            )
        if self._fitted_per_series:
            if x.shape[0] != self.center_.shape[0]:
                raise ValueError(
                    f"Standardize(per_series=True).{what} maps series back with the statistics "
                    f"of the {self.center_.shape[0]} series seen in fit, but got {x.shape[0]} "
                    "series; fit on the series whose values you want to invert"
                )
            return self.center_[..., None], self.scale_[..., None]
        if x.ndim == 3 and x.shape[1] != self.center_.shape[0]:
            raise ValueError(
                f"Standardize was fitted on {self.center_.shape[0]} channels; {what} got "
                f"{x.shape[1]}"
            )
        shape = (1, -1, 1) if x.ndim == 3 else (1, 1)
        return self.center_.reshape(shape), self.scale_.reshape(shape)

    def inverse_transform(self, X: Any) -> Any:
        """Map standardized values back to physical units: ``X * scale_ + center_``.

        The time length may differ from ``fit`` (e.g. forecasts over a horizon).

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Standardized series; with ``per_series=True`` the same series, in
            the same order, as in ``fit``.

        Returns
        -------
        X_original : ndarray or xarray.DataArray
            Series in the original units.
        """
        check_is_fitted(self, ["center_", "scale_"])
        x, info = unwrap(X)
        x = check_series(self, x, reset=False, validate=False, allow_nan=True)
        c, s = self._broadcast_fitted(x, "inverse_transform")
        return rewrap(x * s + c, None, info)


def standardize(x: ArrayLike, *, with_mean: bool = True, with_std: bool = True,
                center: str = "mean", scale: str = "std", axis: int = -1) -> np.ndarray:
    """Standardize each series along ``axis`` by its own center and scale.

    Functional form of ``Standardize(per_series=True)``.

    Parameters
    ----------
    x : array_like
        Signal(s).
    with_mean, with_std, center, scale
        As in :class:`Standardize`.
    axis : int, default=-1
        Time axis.

    Returns
    -------
    z : ndarray
        Standardized signal, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.preprocessing import standardize
    >>> standardize(np.array([1.0, 2.0, 3.0, 100.0]), center="median", scale="iqr")
    array([-0.05882353, -0.01960784,  0.01960784,  3.82352941])
    """
    est = Standardize(per_series=True, with_mean=with_mean, with_std=with_std, center=center,
                      scale=scale)
    return run_as_function(est, x, axis, name="standardize")[0]
