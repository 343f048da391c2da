"""Every regular-sampling transformer against the direct SciPy call, to 1e-12.

Fresh random signals each run (``rng`` fixture), univariate ``(n, L)`` and
multichannel ``(n, C, L)``, as numpy arrays and as DataArrays whose ``time``
dimension is *not* last (so the transpose is exercised) and whose coordinates
must survive.
"""

import numpy as np
import pytest
import xarray as xr
from scipy import signal, stats
from sklearn.preprocessing import StandardScaler

from sciamba import preprocessing as pp

FS = 100.0
TOL = dict(rtol=1e-12, atol=1e-12)


def _sos(*args, **kw):
    return signal.butter(*args, output="sos", fs=FS, **kw)


def _standard_global(x):
    # StandardScaler per channel over all series and time steps.
    c = 1 if x.ndim == 2 else x.shape[1]
    flat = np.moveaxis(x.reshape(x.shape[0], c, -1), 1, -1).reshape(-1, c)
    z = StandardScaler().fit_transform(flat)
    return np.moveaxis(z.reshape(x.shape[0], -1, c), -1, 1).reshape(x.shape)


def _robust_per_series(x):
    return (x - np.median(x, axis=-1, keepdims=True)) / stats.iqr(x, axis=-1, keepdims=True)


def _medfilt_rows(x):
    flat = x.reshape(-1, x.shape[-1])
    return np.stack([signal.medfilt(r, 5) for r in flat]).reshape(x.shape)


def _spectrogram_stacked(x):
    s = signal.spectrogram(x, fs=FS, nperseg=32, noverlap=16, axis=-1)[2]
    return s.reshape(x.shape[0], -1, s.shape[-1])


# (id, estimator, reference(x) with time last)
CASES = [
    ("butter-low", pp.Butterworth(12.5, fs=FS), lambda x: signal.sosfiltfilt(_sos(4, 12.5), x)),
    ("butter-band-causal", pp.Butterworth((5.0, 20.0), "bandpass", order=3, fs=FS, zero_phase=False),
     lambda x: signal.sosfilt(_sos(3, [5.0, 20.0], btype="bandpass"), x)),
    ("butter-high-even", pp.Butterworth(2.0, "highpass", order=2, fs=FS, padtype="even"),
     lambda x: signal.sosfiltfilt(_sos(2, 2.0, btype="highpass"), x, padtype="even")),
    ("butter-stop-padlen", pp.Butterworth([10.0, 15.0], "bandstop", order=2, fs=FS, padlen=20),
     lambda x: signal.sosfiltfilt(_sos(2, [10.0, 15.0], btype="bandstop"), x, padlen=20)),
    ("sosfilter", pp.SOSFilter(signal.cheby2(4, 40, 0.3, output="sos")),
     lambda x: signal.sosfiltfilt(signal.cheby2(4, 40, 0.3, output="sos"), x)),
    ("notch", pp.Notch(25.0, 20.0, fs=FS),
     lambda x: signal.sosfiltfilt(signal.tf2sos(*signal.iirnotch(25.0, 20.0, fs=FS)), x)),
    ("detrend-bp", pp.Detrend(bp=[40, 170]), lambda x: signal.detrend(x, bp=[40, 170])),
    ("detrend-constant", pp.Detrend("constant"), lambda x: signal.detrend(x, type="constant")),
    ("savgol", pp.SavgolFilter(11, 3), lambda x: signal.savgol_filter(x, 11, 3)),
    ("savgol-deriv", pp.SavgolFilter(9, 2, deriv=1, delta=0.01, mode="mirror"),
     lambda x: signal.savgol_filter(x, 9, 2, deriv=1, delta=0.01, mode="mirror")),
    ("median", pp.MedianFilter(5), _medfilt_rows),
    ("resample-fft", pp.Resample(num=157), lambda x: signal.resample(x, 157, axis=-1)),
    ("resample-fft-ratio", pp.Resample(up=2, down=3),
     lambda x: signal.resample(x, -(-x.shape[-1] * 2 // 3), axis=-1)),
    ("resample-poly", pp.Resample(up=3, down=7, method="poly"),
     lambda x: signal.resample_poly(x, 3, 7, axis=-1)),
    ("decimate-iir", pp.Decimate(3), lambda x: signal.decimate(x, 3)),
    ("decimate-fir", pp.Decimate(4, ftype="fir", zero_phase=False),
     lambda x: signal.decimate(x, 4, ftype="fir", zero_phase=False)),
    ("zscore", pp.Standardize(), lambda x: stats.zscore(x, axis=-1)),
    ("robust", pp.Standardize(center="median", scale="iqr"), _robust_per_series),
    ("global", pp.Standardize(per_series=False), _standard_global),
    ("periodogram", pp.Periodogram(fs=FS, window="hann", scaling="spectrum"),
     lambda x: signal.periodogram(x, fs=FS, window="hann", scaling="spectrum")[1]),
    ("welch", pp.Welch(fs=FS, nperseg=64), lambda x: signal.welch(x, fs=FS, nperseg=64)[1]),
    ("welch-median", pp.Welch(fs=FS, nperseg=50, noverlap=10, detrend="linear", average="median"),
     lambda x: signal.welch(x, fs=FS, nperseg=50, noverlap=10, detrend="linear",
                            average="median")[1]),
    ("spectrogram", pp.Spectrogram(fs=FS, nperseg=32, noverlap=16), _spectrogram_stacked),
]


def _signal(rng, layout):
    n = int(rng.integers(2, 5))
    L = int(rng.integers(280, 360))  # odd and even lengths both occur
    shape = (n, L) if layout == "univariate" else (n, int(rng.integers(2, 4)), L)
    return rng.standard_normal(shape) + np.sin(np.arange(L) / 7.0)


def _as_dataarray(x, rng):
    """DataArray with time *first*, labelled series/channels, a time coordinate and fs."""
    L = x.shape[-1]
    coords = {
        "series": [f"s{i}" for i in range(x.shape[0])],
        "time": 3.0 + np.arange(L) / FS,
    }
    dims = ["series", "time"]
    if x.ndim == 3:
        coords["channel"] = [f"lead{i}" for i in range(x.shape[1])]
        dims = ["series", "channel", "time"]
    da = xr.DataArray(x, dims=dims, coords=coords, attrs={"fs": FS, "units": "mV"}, name="ecg")
    da = da.assign_coords(site=("series", rng.integers(0, 9, x.shape[0])))
    return da.transpose("time", *dims[:-1])


@pytest.mark.parametrize("layout", ["univariate", "multichannel"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_numpy_matches_scipy(case, layout, rng):
    _, est, ref = case
    x = _signal(rng, layout)
    expected = ref(x)
    out = est.fit_transform(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, **TOL)
    # transform after fit is the same computation
    np.testing.assert_allclose(est.transform(x), expected, **TOL)


@pytest.mark.parametrize("layout", ["univariate", "multichannel"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_dataarray_matches_scipy_and_keeps_coords(case, layout, rng):
    name, est, ref = case
    x = _signal(rng, layout)
    da = _as_dataarray(x, rng)
    out = est.fit_transform(da)
    assert isinstance(out, xr.DataArray)
    expected = ref(x)
    lead = ("series",) if x.ndim == 2 else ("series", "channel")
    if isinstance(est, pp.Spectrogram):
        f, t, _ = signal.spectrogram(x, fs=FS, nperseg=32, noverlap=16)
        if x.ndim == 3:
            assert out.dims == ("series", "feature", "time")
            np.testing.assert_array_equal(out["channel"].values, np.repeat(da["channel"].values, f.size))
            np.testing.assert_array_equal(out["frequency"].values, np.tile(f, x.shape[1]))
        else:
            assert out.dims == ("series", "frequency", "time")
            np.testing.assert_array_equal(out["frequency"].values, f)
        np.testing.assert_allclose(out["time"].values, 3.0 + t, **TOL)
        assert "fs" not in out.attrs
    elif isinstance(est, (pp.Periodogram, pp.Welch)):
        assert out.dims == (*lead, "frequency")
        f = (signal.periodogram(x, fs=FS, window="hann")[0] if isinstance(est, pp.Periodogram)
             else signal.welch(x, fs=FS, nperseg=est.nperseg)[0])
        np.testing.assert_allclose(out["frequency"].values, f, **TOL)
        assert "fs" not in out.attrs
    else:
        assert out.dims == (*lead, "time")
        assert out.attrs["units"] == "mV" and out.name == "ecg"
        t = da["time"].values
        L = x.shape[-1]
        if isinstance(est, pp.Resample) and est.method == "fft":
            num = expected.shape[-1]
            _, t_ref = signal.resample(x, num, t=t, axis=-1)
            np.testing.assert_allclose(out["time"].values, t_ref, **TOL)
            np.testing.assert_allclose(out.attrs["fs"], FS * num / L, **TOL)
        elif isinstance(est, pp.Resample):
            step = (1.0 / FS) * est.down / est.up
            np.testing.assert_allclose(out["time"].values, 3.0 + step * np.arange(expected.shape[-1]),
                                       **TOL)
            np.testing.assert_allclose(out.attrs["fs"], FS * est.up / est.down, **TOL)
        elif isinstance(est, pp.Decimate):
            np.testing.assert_array_equal(out["time"].values, t[:: est.q])
            np.testing.assert_allclose(out.attrs["fs"], FS / est.q, **TOL)
        else:
            np.testing.assert_array_equal(out["time"].values, t)
            assert out.attrs["fs"] == FS
    np.testing.assert_allclose(out.values, expected, **TOL)
    # non-time coordinates survive every transformer
    np.testing.assert_array_equal(out["series"].values, da["series"].values)
    np.testing.assert_array_equal(out["site"].values, da["site"].values)


def test_notch_equals_transfer_function_filtfilt(rng):
    # The SOS route is the same filter as filtfilt on iirnotch's (b, a).
    x = rng.standard_normal((3, 401))
    b, a = signal.iirnotch(60.0, 30.0, fs=360.0)
    np.testing.assert_allclose(pp.notch(x, 60.0, fs=360.0), signal.filtfilt(b, a, x),
                               rtol=1e-9, atol=1e-9)


def test_notch_removes_mains_and_keeps_the_rest(rng):
    fs, L = 360.0, 3601
    t = np.arange(L) / fs
    slow = np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))
    x = (slow + rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * 60.0 * t))[None, :]
    y = pp.Notch(60.0, fs=fs).fit_transform(x)[0]
    np.testing.assert_allclose(y[400:-400], slow[400:-400], atol=0.02)


def test_butterworth_gain_at_cutoff_is_half_power_per_pass(rng):
    # Zero phase squares the response: |H|^2 = 1/2 at the cutoff.
    fs, fc, L = 200.0, float(rng.uniform(10, 40)), 20001
    t = np.arange(L) / fs
    y = pp.butterworth(np.sin(2 * np.pi * fc * t), fc, fs=fs)
    amp = np.abs(y[5000:-5000]).max()
    np.testing.assert_allclose(amp, 0.5, atol=5e-3)


STATELESS = [c for c in CASES if not c[1].__sklearn_tags__().requires_fit]


@pytest.mark.parametrize("case", STATELESS, ids=[c[0] for c in STATELESS])
def test_stateless_fit_learns_nothing(case, rng):
    # After fit on one batch, another batch with the same channels but another
    # length and other series transforms exactly like the direct call.
    _, est, ref = case
    a = _signal(rng, "multichannel")
    b = rng.standard_normal((a.shape[0] + 1, a.shape[1], a.shape[2] + int(rng.integers(1, 30))))
    est.fit(a)
    np.testing.assert_allclose(est.transform(b), ref(b), **TOL)


def test_global_standardize_applies_training_statistics(rng):
    a = _signal(rng, "multichannel") * 3.0 + 2.0
    b = rng.standard_normal((5, a.shape[1], a.shape[2] + 11))
    est = pp.Standardize(per_series=False).fit(a)
    mean, std = a.mean(axis=(0, 2)), a.std(axis=(0, 2))
    np.testing.assert_allclose(est.center_, mean, **TOL)
    np.testing.assert_allclose(est.scale_, std, **TOL)
    np.testing.assert_allclose(est.transform(b), (b - mean[:, None]) / std[:, None], **TOL)
    np.testing.assert_allclose(est.inverse_transform(est.transform(b)), b, **TOL)
