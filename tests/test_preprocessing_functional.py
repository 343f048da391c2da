"""Functional forms, Standardize semantics, xarray details and the docstring examples."""

import doctest

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import signal, stats

import sciamba.preprocessing as pp
from sciamba.preprocessing import _filters, _irregular, _resampling, _scaling, _smoothing, _spectral

TOL = dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "func, kwargs, ref",
    [
        (pp.butterworth, dict(cutoff=0.1, order=3),
         lambda x, ax: signal.sosfiltfilt(signal.butter(3, 0.2, output="sos"), x, axis=ax)),
        (pp.sos_filter, dict(sos=signal.cheby1(2, 1, 0.3, output="sos"), zero_phase=False),
         lambda x, ax: signal.sosfilt(signal.cheby1(2, 1, 0.3, output="sos"), x, axis=ax)),
        (pp.notch, dict(freq=0.1, quality=10.0),
         lambda x, ax: signal.sosfiltfilt(signal.tf2sos(*signal.iirnotch(0.1, 10.0, fs=1.0)), x,
                                          axis=ax)),
        (pp.detrend, dict(bp=[30]), lambda x, ax: signal.detrend(x, axis=ax, bp=[30])),
        (pp.savgol_filter, dict(window_length=7, polyorder=2),
         lambda x, ax: signal.savgol_filter(x, 7, 2, axis=ax)),
        (pp.resample, dict(num=45), lambda x, ax: signal.resample(x, 45, axis=ax)),
        (pp.resample, dict(up=5, down=3, method="poly"),
         lambda x, ax: signal.resample_poly(x, 5, 3, axis=ax)),
        (pp.decimate, dict(q=2), lambda x, ax: signal.decimate(x, 2, axis=ax)),
        (pp.standardize, dict(), lambda x, ax: stats.zscore(x, axis=ax)),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) and hasattr(v, "__module__") and
    v.__module__.startswith("sciamba") else "",
)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_functions_match_scipy_on_any_axis(func, kwargs, ref, axis, rng):
    shape = [3, 4, 5]
    shape[axis] = int(rng.integers(90, 131))
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(func(x, axis=axis, **kwargs), ref(x, axis), **TOL)


def test_median_filter_function_is_per_series(rng):
    x = rng.standard_normal((4, 41, 3))
    y = pp.median_filter(x, 5, axis=1)
    for i in range(4):
        for k in range(3):
            np.testing.assert_array_equal(y[i, :, k], signal.medfilt(x[i, :, k], 5))


def test_spectral_functions_return_scipy_tuples(rng):
    x = rng.standard_normal((50 + int(rng.integers(0, 50)), 2))
    f, p = pp.periodogram(x, fs=5.0, axis=0)
    fr, pr = signal.periodogram(x, fs=5.0, axis=0)
    np.testing.assert_allclose(f, fr, **TOL)
    np.testing.assert_allclose(p, pr, **TOL)
    f, p = pp.welch(x, fs=5.0, nperseg=16, axis=0)
    fr, pr = signal.welch(x, fs=5.0, nperseg=16, axis=0)
    np.testing.assert_allclose(p, pr, **TOL)
    f, t, s = pp.spectrogram(x, fs=5.0, nperseg=16, axis=0)
    fr, tr, sr = signal.spectrogram(x, fs=5.0, nperseg=16, axis=0)
    np.testing.assert_allclose(t, tr, **TOL)
    np.testing.assert_allclose(s, sr, **TOL)


def test_function_and_transformer_share_one_implementation(rng):
    x = rng.standard_normal((3, 2, 200))
    est = pp.Butterworth((0.05, 0.2), "bandpass", order=2)
    np.testing.assert_array_equal(est.fit_transform(x),
                                  pp.butterworth(x, (0.05, 0.2), btype="bandpass", order=2))


# -- Standardize --------------------------------------------------------------------
@pytest.mark.parametrize("center, scale", [("mean", "std"), ("median", "iqr"), ("mean", "iqr")])
@pytest.mark.parametrize("per_series", [True, False])
def test_standardize_inverse_round_trip(rng, center, scale, per_series):
    X = rng.standard_normal((5, 3, 77)) * rng.uniform(0.1, 10, (5, 3, 1)) + rng.normal(0, 50, (5, 3, 1))
    sc = pp.Standardize(per_series=per_series, center=center, scale=scale).fit(X)
    Z = sc.transform(X)
    np.testing.assert_allclose(sc.inverse_transform(Z), X, rtol=1e-12, atol=1e-10)
    if per_series:
        assert sc.center_.shape == (5, 3)
        med = np.median(Z, axis=-1) if center == "median" else Z.mean(axis=-1)
        np.testing.assert_allclose(med, 0.0, atol=1e-12)
    else:
        assert sc.center_.shape == (3,)


def test_standardize_inverts_forecasts_of_the_fitted_series(rng):
    history = rng.normal(100.0, 5.0, (4, 120))
    sc = pp.Standardize().fit(history)
    z_forecast = rng.standard_normal((4, 7))  # another length: a forecast horizon
    phys = sc.inverse_transform(z_forecast)
    np.testing.assert_allclose(phys, z_forecast * history.std(axis=1, keepdims=True)
                               + history.mean(axis=1, keepdims=True), **TOL)
    da = xr.DataArray(z_forecast, dims=("series", "time"), coords={"time": np.arange(120, 127)})
    out = sc.inverse_transform(da)
    np.testing.assert_allclose(out.values, phys, **TOL)
    np.testing.assert_array_equal(out["time"].values, np.arange(120, 127))


def test_standardize_constant_and_switches(rng):
    X = np.vstack([np.full(20, 3.3), rng.standard_normal(20)])
    Z = pp.Standardize().fit_transform(X)
    np.testing.assert_array_equal(Z[0], 0.0)  # constant series -> 0, not NaN
    Z = pp.Standardize(with_mean=False).fit_transform(X[1:])
    np.testing.assert_allclose(Z, X[1:] / X[1:].std(), **TOL)
    Z = pp.Standardize(with_std=False, center="median").fit_transform(X[1:])
    np.testing.assert_allclose(Z, X[1:] - np.median(X[1:]), **TOL)


@pytest.mark.parametrize("center, scale", [("mean", "std"), ("median", "iqr")])
def test_standardize_leaves_missing_samples_out(rng, center, scale):
    """NaN-padded and gappy series: statistics of the observed samples only, NaN kept."""
    X = rng.standard_normal((4, 2, 37)) * 3.0 + 5.0
    X[0, :, :11] = np.nan            # left padding (a shorter series)
    X[1, 1, [3, 20, 21]] = np.nan    # interior gaps
    X[2, 0, :] = np.nan              # a channel with nothing observed
    Z = pp.Standardize(center=center, scale=scale).fit_transform(X)
    np.testing.assert_array_equal(np.isnan(Z), np.isnan(X))
    for i, j in np.ndindex(4, 2):
        obs = X[i, j][~np.isnan(X[i, j])]
        if obs.size == 0:
            continue
        if center == "mean":
            ref = stats.zscore(obs)
        else:
            q75, q25 = np.percentile(obs, [75, 25])
            ref = (obs - np.median(obs)) / (q75 - q25)
        np.testing.assert_allclose(Z[i, j][~np.isnan(X[i, j])], ref, rtol=1e-12, atol=1e-12)
    # Pooled statistics (per_series=False) skip the NaN the same way.
    g = pp.Standardize(per_series=False).fit(X)
    for j in range(2):
        obs = X[:, j][~np.isnan(X[:, j])]
        np.testing.assert_allclose([g.center_[j], g.scale_[j]], [obs.mean(), obs.std()], rtol=1e-12)
    # The functional form and an inverse round trip of the fitted series.
    np.testing.assert_array_equal(pp.standardize(X, center=center, scale=scale), Z)
    sc = pp.Standardize(center=center, scale=scale).fit(X)
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(X)), X, rtol=1e-12, atol=1e-12)


def test_standardize_missing_edge_cases(rng):
    X = rng.standard_normal((3, 2, 12))
    X[0, 1] = 4.0
    X[0, 1, [2, 7]] = np.nan  # a constant series with gaps maps to exactly 0
    Z = pp.standardize(X)
    np.testing.assert_array_equal(Z[0, 1][~np.isnan(Z[0, 1])], 0.0)
    X[1, 0, :5] = np.nan
    obs = X[1, 0, 5:]
    np.testing.assert_allclose(pp.standardize(X, with_mean=False)[1, 0, 5:], obs / obs.std(), rtol=1e-12)
    np.testing.assert_allclose(pp.standardize(X, with_std=False)[1, 0, 5:], obs - obs.mean(), rtol=1e-12)
    # Pooled statistics need every channel observed somewhere in fit.
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"channel\(s\) \[1\] have no observed sample"):
        pp.Standardize(per_series=False).fit(X)
    # inf is not a missing sample: still refused.
    X[2, 0, 3] = np.inf
    with pytest.raises(ValueError, match="inf"):
        pp.Standardize().fit_transform(X)


def test_standardize_overflow_still_warns():
    with pytest.warns(RuntimeWarning, match="overflow"):
        pp.standardize(np.array([[1e200, -1e200, 1e200, 3.0]]))


def test_standardize_all_missing_is_quiet(rng):
    X = rng.standard_normal((2, 9))
    X[1] = np.nan
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = pp.standardize(X)
    assert np.isnan(Z[1]).all() and np.isfinite(Z[0]).all()


def test_standardize_tags_follow_per_series():
    assert not pp.Standardize().__sklearn_tags__().requires_fit
    assert pp.Standardize(per_series=False).__sklearn_tags__().requires_fit


# -- xarray details -------------------------------------------------------------------
def test_datetime_coordinates_follow_resampling(rng):
    t = np.datetime64("2026-03-01T12:00:00", "ns") + np.arange(400) * np.timedelta64(10, "ms")
    da = xr.DataArray(rng.standard_normal((2, 400)), dims=("beat", "time"),
                      coords={"time": t}, attrs={"fs": 100.0})
    out = pp.Resample(up=1, down=4, method="poly").fit_transform(da)
    np.testing.assert_array_equal(out["time"].values, t[::4])
    assert out.attrs["fs"] == 25.0
    out = pp.Decimate(5).fit_transform(da)
    np.testing.assert_array_equal(out["time"].values, t[::5])
    out = pp.Spectrogram(fs=100.0, nperseg=50, noverlap=0).fit_transform(da)
    _, frames, _ = signal.spectrogram(da.values, fs=100.0, nperseg=50, noverlap=0)
    np.testing.assert_array_equal(out["time"].values,
                                  t[0] + (frames * 1e9).astype("timedelta64[ns]"))


def test_dataarray_without_time_coordinate(rng):
    da = xr.DataArray(rng.standard_normal((2, 3, 64)), dims=("s", "c", "time"))
    out = pp.Resample(num=32).fit_transform(da)
    assert out.dims == ("s", "c", "time") and "time" not in out.coords
    out = pp.Welch(nperseg=16).fit_transform(da)
    np.testing.assert_allclose(out["frequency"].values, np.fft.rfftfreq(16), **TOL)


# -- docstring examples ---------------------------------------------------------------
@pytest.mark.parametrize(
    "module", [pp, _filters, _smoothing, _resampling, _scaling, _spectral, _irregular],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


# -- properties on arbitrary inputs (hypothesis) -----------------------------------------
_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_series = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9),
                     elements=_finite)


@settings(max_examples=40, deadline=None)
@given(X=_series, center=st.sampled_from(["mean", "median"]), scale=st.sampled_from(["std", "iqr"]),
       per_series=st.booleans())
def test_standardize_round_trip_property(X, center, scale, per_series):
    sc = pp.Standardize(per_series=per_series, center=center, scale=scale).fit(X)
    Z = sc.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(sc.inverse_transform(Z), X, rtol=1e-9, atol=1e-9 * (1 + np.abs(X).max()))


@settings(max_examples=40, deadline=None)
@given(X=_series, data=st.data(), method=st.sampled_from(["linear", "ffill", "zero"]))
def test_fill_missing_property(X, data, method):
    mask = data.draw(hnp.arrays(bool, X.shape))
    mask[..., 0] = False  # keep one observation per series
    Xn = np.where(mask, np.nan, X)
    out = pp.FillMissing(method).fit_transform(Xn)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[~mask], X[~mask])
    if method != "zero":  # interpolated values stay inside the observed range of their series
        lo = np.nanmin(Xn, axis=-1, keepdims=True)
        hi = np.nanmax(Xn, axis=-1, keepdims=True)
        assert ((out >= lo - 1e-9) & (out <= hi + 1e-9)).all()
