"""Every bad input named in the issue gets a clear error that says what to do."""

import numpy as np
import pytest
import xarray as xr
from scipy import signal
from sklearn.exceptions import NotFittedError

from sciamba import preprocessing as pp


@pytest.fixture
def x(rng):
    return rng.standard_normal((3, 2, 301))


# -- cutoff / frequency design errors --------------------------------------------
@pytest.mark.parametrize(
    "est, match",
    [
        (pp.Butterworth(50.0, fs=100.0), r"cutoff=50 .*Nyquist frequency fs/2=50"),
        (pp.Butterworth(70.0, "highpass", fs=100.0), r"at or above Nyquist"),
        (pp.Butterworth((10.0, 60.0), "bandpass", fs=100.0), r"cutoff=60 .*Nyquist"),
        (pp.Notch(180.0, fs=360.0), r"freq=180 .*Nyquist"),
    ],
)
def test_cutoff_at_or_above_nyquist(est, match, x):
    with pytest.raises(ValueError, match=match):
        est.fit(x)  # a bad design fails in fit, before any data is transformed
    with pytest.raises(ValueError, match=match):
        est.transform(x)  # and unfitted


def test_band_edges_out_of_order(x):
    with pytest.raises(ValueError, match=r"increasing order \(low, high\).*cutoff=\(40, 5\)"):
        pp.Butterworth((40.0, 5.0), "bandpass", fs=100.0).fit_transform(x)
    with pytest.raises(ValueError, match="increasing order"):
        pp.butterworth(x, (5.0, 5.0), btype="bandstop", fs=100.0)


def test_cutoff_count_must_match_btype(x):
    with pytest.raises(ValueError, match="takes one cutoff frequency"):
        pp.Butterworth((5.0, 10.0), fs=100.0).fit_transform(x)
    with pytest.raises(ValueError, match=r"takes two band edges \(low, high\)"):
        pp.Butterworth(5.0, "bandpass", fs=100.0).fit_transform(x)


@pytest.mark.parametrize(
    "est",
    [pp.Butterworth(1.0, fs=-2.0), pp.Notch(1.0, fs=0.0), pp.Welch(fs=0.0), pp.Periodogram(fs=-1),
     pp.Spectrogram(fs=0)],
)
def test_fs_must_be_positive(est, x):
    with pytest.raises(ValueError, match=r"'fs' parameter .* range \(0.0, inf\)"):
        est.fit(x)
    with pytest.raises(ValueError, match=r"'fs' parameter"):
        est.transform(x)  # stateless transform validates its parameters too


# -- series too short for the padding --------------------------------------------
def test_series_shorter_than_filtfilt_padding(rng):
    # order 4 -> 2 sections -> sosfiltfilt pads 3 * (2*2 + 1) = 15 samples per end
    short = rng.standard_normal((2, 15))
    with pytest.raises(ValueError, match=r"longer than 15 samples \(at least 16\); got 15"):
        pp.Butterworth(0.1).fit_transform(short)
    sos = signal.butter(4, 0.1, fs=1.0, output="sos")
    with pytest.raises(ValueError, match="padlen"):  # scipy agrees that 15 is too short
        signal.sosfiltfilt(sos, short)
    # one more sample is enough, and matches scipy
    ok = rng.standard_normal((2, 16))
    np.testing.assert_allclose(pp.Butterworth(0.1).fit_transform(ok), signal.sosfiltfilt(sos, ok),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="longer than 9 samples"):  # one section: 3 * 3
        pp.notch(short[:, :6], 0.2)


def test_decimate_series_shorter_than_padding(rng):
    with pytest.raises(ValueError, match=r"longer than 27 samples; got 27"):
        pp.Decimate(2).fit_transform(rng.standard_normal((1, 27)))
    pp.Decimate(2).fit_transform(rng.standard_normal((1, 28)))


# -- NaN given to a filter -------------------------------------------------------
@pytest.mark.parametrize(
    "est",
    [pp.Butterworth(0.1), pp.Notch(0.2), pp.Detrend(), pp.SavgolFilter(5, 2), pp.MedianFilter(),
     pp.Resample(num=50), pp.Decimate(2, ftype="fir"), pp.Welch(),
     pp.Periodogram(), pp.Spectrogram(nperseg=16)],
    ids=lambda e: type(e).__name__,
)
def test_nan_in_filter_points_to_fillmissing(est, x):
    x[1, 0, 17] = np.nan
    with pytest.raises(ValueError, match=r"NaN .*FillMissing.*Interpolate"):
        est.fit_transform(x)


def test_nan_in_functional_filter(x):
    x[0, 1, 5] = np.nan
    with pytest.raises(ValueError, match=r"butterworth: .*FillMissing"):
        pp.butterworth(x, 0.1)


# -- times not increasing --------------------------------------------------------
@pytest.mark.parametrize("est", [pp.LombScargle([0.1, 0.2]), pp.Interpolate(0.5)],
                         ids=lambda e: type(e).__name__)
def test_times_must_increase(est, rng):
    X = rng.standard_normal((2, 6))
    times = np.array([0.0, 1.0, 2.0, 1.5, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"strictly increasing; series 0 has times 2 then 1.5"):
        est.fit_transform(X, times=times)
    dup = np.tile(np.array([0.0, 1.0, 1.0, 2.0, 3.0, 4.0]), (2, 1))
    with pytest.raises(ValueError, match="strictly increasing"):
        est.transform(X, times=dup)
    with pytest.raises(ValueError, match=r"times has 5 entries but X has 6"):
        est.transform(X, times=np.arange(5.0))
    with pytest.raises(ValueError, match="times are all NaN"):
        est.transform(X, times=np.full(6, np.nan))


def test_interpolate_refuses_a_runaway_grid(rng):
    with pytest.raises(ValueError, match="use a larger step"):
        pp.Interpolate(step=1e-9).fit_transform(rng.standard_normal((2, 5)), times=np.arange(5.0))


# -- resampling ratio of zero ------------------------------------------------------
@pytest.mark.parametrize(
    "est, match",
    [
        (pp.Resample(up=0, down=3), r"'up' parameter .* range \[1, inf\)"),
        (pp.Resample(up=2, down=0, method="poly"), r"'down' parameter"),
        (pp.Resample(num=0), r"'num' parameter"),
        (pp.Decimate(0), r"'q' parameter"),
        (pp.Resample(up=2), "give the output length num, or both up and down"),
        (pp.Resample(num=10, up=1, down=2), "either num or"),
    ],
)
def test_resampling_ratio_of_zero(est, match, x):
    with pytest.raises(ValueError, match=match):
        est.fit_transform(x)


# -- shapes and containers -------------------------------------------------------
def test_one_d_input_says_reshape(rng):
    with pytest.raises(ValueError, match=r"for a single series use X.reshape\(1, -1\)"):
        pp.Detrend().fit(rng.standard_normal(10))
    with pytest.raises(ValueError, match="got an array with 4 dimension"):
        pp.Detrend().fit(rng.standard_normal((2, 2, 2, 10)))


def test_dataarray_needs_time_dim_and_consistent_fs(rng):
    da = xr.DataArray(rng.standard_normal((2, 50)), dims=("series", "t"))
    with pytest.raises(ValueError, match=r"no 'time' dimension .*rename"):
        pp.Detrend().fit_transform(da)
    da = xr.DataArray(rng.standard_normal((2, 200)), dims=("series", "time"), attrs={"fs": 100.0})
    with pytest.raises(ValueError, match=r"fs=360 but the DataArray .* attrs\['fs'\]=100; set fs=100"):
        pp.Butterworth(10.0, fs=360.0).fit_transform(da)
    one = xr.DataArray(rng.standard_normal(20), dims=("time",))
    with pytest.raises(ValueError, match="expand_dims"):
        pp.Detrend().fit_transform(one)


def test_resample_needs_regular_time_coordinate(rng):
    t = np.cumsum(rng.uniform(0.5, 1.5, 40))
    da = xr.DataArray(rng.standard_normal((2, 40)), dims=("series", "time"), coords={"time": t})
    with pytest.raises(ValueError, match="not evenly spaced.*Interpolate"):
        pp.Resample(num=20).fit_transform(da)


def test_length_checked_after_fit_for_2d(rng):
    est = pp.Butterworth(0.1).fit(rng.standard_normal((2, 100)))
    with pytest.raises(ValueError, match="X has 90 features, but Butterworth is expecting 100"):
        est.transform(rng.standard_normal((2, 90)))


# -- transformer specific ------------------------------------------------------------
def test_sos_filter_bad_sos(x):
    with pytest.raises(ValueError, match=r"shape \(n_sections, 6\)"):
        pp.SOSFilter(np.ones((2, 5))).fit_transform(x)
    sos = signal.butter(2, 0.2, output="sos")
    sos[:, 3] = 2.0
    with pytest.raises(ValueError, match=r"a0 = sos\[:, 3\] = 1"):
        pp.SOSFilter(sos).fit_transform(x)
    unstable = signal.butter(2, 0.2, output="sos")
    unstable[0, 4:] = [-2.5, 1.2]  # real poles at z = 1.85 and 0.65
    with pytest.raises(ValueError, match=r"section 0 has a pole at \|z\|=1.85.* unstable"):
        pp.sos_filter(x, unstable)


def test_savgol_errors(x):
    with pytest.raises(ValueError, match="polyorder=5 must be less than window_length=5"):
        pp.SavgolFilter(5, 5).fit_transform(x)
    with pytest.raises(ValueError, match=r"at least window_length=401 samples; got 301"):
        pp.SavgolFilter(401, 3).fit_transform(x)


def test_median_kernel_must_be_odd(x):
    with pytest.raises(ValueError, match="kernel_size must be odd, got 4"):
        pp.MedianFilter(4).fit_transform(x)


def test_detrend_breakpoints_in_range(x):
    with pytest.raises(ValueError, match=r"breakpoints must lie in \[0, n_times\]=\[0, 301\]"):
        pp.Detrend(bp=[10, 400]).fit_transform(x)


def test_segment_errors(x):
    with pytest.raises(ValueError, match="noverlap=32 must be less than the segment length 32"):
        pp.Welch(nperseg=32, noverlap=32).fit_transform(x)
    with pytest.raises(ValueError, match="nfft=16 must be >= the segment length 32"):
        pp.Spectrogram(nperseg=32, nfft=16).fit_transform(x)


def test_lombscargle_errors(rng):
    X = rng.standard_normal((2, 30))
    with pytest.raises(ValueError, match="finite positive frequencies"):
        pp.LombScargle([0.1, -0.2]).fit_transform(X)
    with pytest.raises(ValueError, match=r"weights of series \(1,\) must be finite, >= 0"):
        w = np.ones((2, 30))
        w[1, 3] = -1.0
        pp.LombScargle([0.1]).fit_transform(X, weights=w)
    with pytest.raises(ValueError, match="do not broadcast"):
        pp.LombScargle([0.1]).fit_transform(X, weights=np.ones(7))


def test_fill_missing_errors(rng):
    X = rng.standard_normal((3, 10))
    X[1] = np.nan
    with pytest.raises(ValueError, match=r"series \(1,\) has no observed sample; drop it or use method='zero'"):
        pp.FillMissing().fit_transform(X)
    np.testing.assert_array_equal(pp.FillMissing("zero").fit_transform(X)[1], 0.0)
    X[1] = 1.0
    X[2, 4] = np.inf
    with pytest.raises(ValueError, match="contains inf; only NaN marks a missing sample"):
        pp.FillMissing().fit_transform(X)


def test_standardize_inverse_errors(rng):
    X = rng.standard_normal((4, 50))
    with pytest.raises(NotFittedError):
        pp.Standardize().inverse_transform(X)
    sc = pp.Standardize().fit(X)
    with pytest.raises(ValueError, match=r"statistics of the 4 series seen in fit, but got 3"):
        sc.inverse_transform(X[:3])
    with pytest.raises(ValueError, match="fitted on 2-D data; inverse_transform got 3-D"):
        sc.inverse_transform(X[:, None, :])
    g = pp.Standardize(per_series=False).fit(rng.standard_normal((4, 3, 50)))
    with pytest.raises(ValueError, match="X has 2 features, but Standardize is expecting 3"):
        g.transform(rng.standard_normal((4, 2, 50)))
    with pytest.raises(NotFittedError):
        pp.Standardize(per_series=False).transform(X)


def test_feature_names_need_2d_fit(rng):
    est = pp.Butterworth(0.1).fit(rng.standard_normal((2, 3, 100)))
    with pytest.raises(ValueError, match="fitted on 3-D"):
        est.get_feature_names_out()
    est.set_output(transform="pandas")
    with pytest.raises(ValueError, match="fitted on 3-D"):
        est.transform(rng.standard_normal((2, 3, 100)))


def test_functional_errors(rng):
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        pp.detrend(rng.standard_normal((3, 4)), axis=2)
    with pytest.raises(ValueError, match="complex input is not supported"):
        pp.median_filter(np.ones(5, dtype=complex))
    with pytest.raises(ValueError, match=r"'order' parameter of Butterworth"):
        pp.butterworth(np.ones(50), 0.1, order=0)


@pytest.mark.parametrize(
    "est, match",
    [
        (pp.SavgolFilter(5, 5), "polyorder=5"),
        (pp.MedianFilter(2), "odd"),
        (pp.Detrend(bp=[999]), "breakpoints"),
        (pp.Resample(up=3), "both up and down"),
        (pp.Decimate(3), "longer than 27"),
        (pp.Welch(nperseg=8, noverlap=8), "noverlap=8"),
        (pp.Spectrogram(nperseg=8, nfft=4), "nfft=4"),
        (pp.LombScargle([0.0]), "positive"),
        (pp.SOSFilter(np.eye(6)), "a0"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_configuration_errors_surface_in_fit(est, match, rng):
    with pytest.raises(ValueError, match=match):
        est.fit(rng.standard_normal((2, 20)))
