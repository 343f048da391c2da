"""The transformer skeleton every preprocessing step shares.

A subclass supplies the math once, in ``_transform_series(x, times)`` acting on
a validated float64 array with time last, and says what became of the time
axis (:class:`NewAxis`). This base class does the scikit-learn contract
(parameter validation, ``n_features_in_``, tags) and the xarray round trip
(coordinates kept, ``time`` re-labelled or replaced by ``frequency``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._validation import (
    FREQ_DIM,
    TIME_DIM,
    DataArrayInfo,
    check_fs_matches,
    check_series,
    unwrap,
)

__all__: list[str] = []


@dataclass
class NewAxis:
    """What the last axis of a transform's output is, when it is not the input's.

    ``dim`` is ``"time"`` (new sampling: ``values`` the new time coordinate or
    None, and either ``fs`` the new sampling frequency or ``fs_factor`` the
    ratio new/old, applied to an ``fs`` attribute if there is one), ``"frequency"``
    (``values`` the frequencies), or ``"spectrogram"`` (``values`` is
    ``(frequencies, frame_times)`` and the output is
    ``(..., n_freqs, n_frames)`` before channels and frequencies are stacked).
    """

    dim: str
    values: Any = None
    fs_factor: float | None = None
    fs: float | None = None


def _kept_coords(da: Any) -> dict:
    # Coordinates along time cannot follow a change of sampling; all others can.
    return {name: c for name, c in da.coords.items() if TIME_DIM not in c.dims}


def rewrap(out: np.ndarray, axis: NewAxis | None, info: DataArrayInfo | None) -> Any:
    """Put a transformed array back into a DataArray like the input, if it was one."""
    if info is None:
        return out
    import xarray as xr

    da = info.da
    if axis is None:
        return da.copy(data=out)
    coords = _kept_coords(da)
    attrs = dict(info.attrs)
    lead = da.dims[:-1]
    if axis.dim == TIME_DIM:
        if axis.values is not None:
            coords[TIME_DIM] = axis.values
        if axis.fs is not None:
            attrs["fs"] = axis.fs
        elif "fs" in attrs and axis.fs_factor is not None:
            attrs["fs"] = float(attrs["fs"]) * axis.fs_factor
        return xr.DataArray(out, dims=da.dims, coords=coords, attrs=attrs, name=da.name)
    # A spectrum is no longer sampled in time: an `fs` attribute would mislead.
    attrs.pop("fs", None)
    if axis.dim == FREQ_DIM:
        coords[FREQ_DIM] = axis.values
        return xr.DataArray(out, dims=(*lead, FREQ_DIM), coords=coords, attrs=attrs, name=da.name)
    if axis.dim == "spectrogram":
        freqs, frames = axis.values
        coords[FREQ_DIM] = freqs
        coords[TIME_DIM] = frames
        shape = (*da.shape[:-1], len(freqs), len(frames))
        res = xr.DataArray(
            out.reshape(shape), dims=(*lead, FREQ_DIM, TIME_DIM), coords=coords, attrs=attrs,
            name=da.name,
        )
        if len(lead) == 2:
            # (series, channel, frequency, time) -> (series, feature, time), feature
            # a (channel, frequency) MultiIndex in the same order as the numpy output.
            res = res.stack(feature=(lead[1], FREQ_DIM)).transpose(lead[0], "feature", TIME_DIM)
        return res
    raise AssertionError(f"unknown axis kind {axis.dim!r}")  # pragma: no cover


class SeriesTransformer(TransformerMixin, BaseEstimator):
    """Base class: validation, tags and the xarray round trip for series transformers.

    Subclasses set ``_stateless`` (no statistics learned in ``fit``) and
    ``_allow_nan`` (NaN marks missing samples), and implement
    ``_transform_series`` (and ``_check_config`` for checks that need the
    series length); stateful ones also implement ``_fit_series``.
    """

    _stateless: bool = True
    _allow_nan: bool = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = not self._stateless
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = self._allow_nan
        return tags

    # -- hooks ---------------------------------------------------------------
    def _transform_series(self, x: np.ndarray, times: Any) -> tuple[np.ndarray, NewAxis | None]:
        raise NotImplementedError  # pragma: no cover

    def _fit_series(self, x: np.ndarray, times: Any) -> None:
        """Learn statistics; stateless transformers only check their configuration."""
        self._check_config(x.shape[-1])

    def _check_config(self, n_times: int) -> None:
        """Raise if the parameters cannot work on series of ``n_times`` samples.

        Called by ``fit`` (so a bad design fails early) and by ``_transform_series``.
        """

    def _check_dataarray(self, info: DataArrayInfo) -> None:
        fs = getattr(self, "fs", None)
        if fs is not None:
            check_fs_matches(fs, info, type(self).__name__)

    def _unwrap(self, X: Any, times: Any) -> tuple[Any, DataArrayInfo | None, Any]:
        # A DataArray is checked against the parameters and supplies the
        # default sampling times.
        x, info = unwrap(X)
        if info is not None:
            self._check_dataarray(info)
            if times is None:
                times = info.times
        return x, info, times

    # -- public API ------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> "SeriesTransformer":
        """Validate the parameters and ``X``; learn statistics if the transformer has any.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Series with time last (a DataArray needs a ``time`` dimension).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        return self._fit(X)

    def _fit(self, X: Any, times: Any = None) -> "SeriesTransformer":
        x, info, times = self._unwrap(X, times)
        x = check_series(self, x, reset=True, allow_nan=self._allow_nan)
        self._n_dims_in = x.ndim
        self._fit_series(x, times)
        return self

    def transform(self, X: Any) -> Any:
        """Apply the transformation along the last (time) axis.

        Parameters
        ----------
        X : array-like of shape (n_series, n_times) or (n_series, n_channels, n_times), or xarray.DataArray
            Series with time last (a DataArray needs a ``time`` dimension).

        Returns
        -------
        Xt : ndarray or xarray.DataArray
            The transformed series, a DataArray with the input's coordinates if
            X was one.
        """
        return self._transform(X)

    def _transform(self, X: Any, times: Any = None, **kwargs: Any) -> Any:
        if self._stateless:
            # Stateless transformers may be used unfitted, so their parameters
            # are checked here too.
            self._validate_params()
        else:
            check_is_fitted(self)
        x, info, times = self._unwrap(X, times)
        x = check_series(self, x, reset=False, allow_nan=self._allow_nan)
        out, axis = self._transform_series(x, times, **kwargs)
        return rewrap(out, axis, info)

    def _check_2d_fit(self, what: str) -> None:
        if getattr(self, "_n_dims_in", 2) != 2:
            raise ValueError(
                f"{type(self).__name__}.{what} describes 2-D output (one column per time "
                "step); this transformer was fitted on 3-D (n_series, n_channels, n_times) "
                "data, whose output is 3-D"
            )


class OneToOneSeriesMixin:
    """Feature names for transformers that keep the length of each series."""

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names: the input names, since every time step maps to itself.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; by default ``feature_names_in_`` or ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_in_")
        self._check_2d_fit("get_feature_names_out")
        return _check_feature_names_in(self, input_features)


class NewLengthSeriesMixin(ClassNamePrefixFeaturesOutMixin):
    """Feature names ``<classname>0, <classname>1, ...`` for transformers whose
    output length is fixed by the input length and the parameters."""

    @property
    def _n_features_out(self) -> int:
        check_is_fitted(self, "n_features_in_")
        self._check_2d_fit("get_feature_names_out")
        # One implementation: the output length is whatever the math produces.
        dummy = np.zeros((1, self.n_features_in_))
        return self._transform_series(dummy, None)[0].shape[-1]
