"""Preprocessing in front of a Mamba estimator, with numpy and with xarray.

Tiny data and ``max_epochs=2``: these tests check the plumbing (shapes, coords,
that the pipeline feeds the classifier exactly what the steps produce), not
accuracy.
"""

import numpy as np
import xarray as xr
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from sciamba import preprocessing as pp

FS = 50.0


def _mamba_classifier(**kw):
    from sciamba import MambaClassifier

    return MambaClassifier(max_epochs=2, d_model=8, n_layers=1, d_state=4, batch_size=8,
                           random_state=0, **kw)


def _two_class_signals(rng, n=8, channels=2, length=64):
    """Class 'slow' carries a 2 Hz tone, class 'fast' a 9 Hz tone, plus noise."""
    t = np.arange(length) / FS
    y = np.array(["slow", "fast"] * (n // 2))
    f = np.where(y == "slow", 2.0, 9.0)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, channels, 1))
    X = np.sin(2 * np.pi * f * t + phase) + 0.3 * rng.standard_normal((n, channels, length))
    return X + rng.normal(0, 5, (n, channels, 1)), y  # offsets for Standardize to remove


def test_butterworth_standardize_mamba_pipeline(rng):
    X, y = _two_class_signals(rng)
    pipe = Pipeline([
        ("bandpass", pp.Butterworth((0.5, 15.0), "bandpass", order=2, fs=FS)),
        ("scale", pp.Standardize()),
        ("clf", _mamba_classifier()),
    ])
    pipe.fit(X, y)
    pred = pipe.predict(X)
    assert pred.shape == (8,) and set(pred) <= {"slow", "fast"}
    proba = pipe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # The classifier saw exactly the preprocessed series: composing by hand with
    # the same seed gives the same predictions.
    Xt = pp.Standardize().fit_transform(
        pp.butterworth(X, (0.5, 15.0), btype="bandpass", order=2, fs=FS))
    manual = clone(pipe.named_steps["clf"]).fit(Xt, y)
    np.testing.assert_allclose(manual.predict_proba(Xt), proba, rtol=1e-5, atol=1e-6)


def test_standardize_then_mamba_on_unequal_lengths(rng):
    """NaN-padded series of unequal length: Standardize skips the padding and
    keeps it NaN, and the classifier takes NaN as absent history."""
    X, y = _two_class_signals(rng)
    X[::2, :, :20] = np.nan  # every other series 20 samples shorter (left padding)
    pipe = Pipeline([("scale", pp.Standardize()), ("clf", _mamba_classifier())]).fit(X, y)
    Xt = pipe[:-1].transform(X)
    np.testing.assert_array_equal(np.isnan(Xt), np.isnan(X))
    np.testing.assert_allclose(np.nanmean(Xt, axis=-1), 0.0, atol=1e-12)
    proba = pipe.predict_proba(X)
    assert np.isfinite(proba).all()
    manual = clone(pipe.named_steps["clf"]).fit(Xt, y)
    np.testing.assert_allclose(manual.predict_proba(Xt), proba, rtol=1e-5, atol=1e-6)


def test_spectrogram_frames_feed_a_mamba(rng):
    X, y = _two_class_signals(rng)
    pipe = Pipeline([
        ("frames", pp.Spectrogram(fs=FS, nperseg=16, noverlap=8)),
        ("scale", pp.Standardize(per_series=False)),
        ("clf", _mamba_classifier()),
    ])
    pipe.fit(X, y)
    assert pipe[:-1].transform(X).shape == (8, 2 * 9, 7)  # (n, C * n_freqs, n_frames)
    assert set(pipe.predict(X)) <= {"slow", "fast"}


def test_dataarray_pipeline_keeps_coords(rng):
    X, y = _two_class_signals(rng)
    series = [f"rec{i:02d}" for i in range(8)]
    da = xr.DataArray(
        np.moveaxis(X, -1, 0),  # time first: the transformers move it last
        dims=("time", "record", "lead"),
        coords={"time": 10.0 + np.arange(X.shape[-1]) / FS, "record": series,
                "lead": ["I", "II"], "age": ("record", rng.integers(20, 80, 8))},
        attrs={"fs": FS, "units": "mV"},
    )
    prep = Pipeline([
        ("detrend", pp.Detrend()),
        ("notch", pp.Notch(12.5, quality=5.0, fs=FS)),
        ("down", pp.Decimate(2)),
        ("scale", pp.Standardize()),
    ])
    out = prep.fit_transform(da)
    assert isinstance(out, xr.DataArray)
    assert out.dims == ("record", "lead", "time")
    assert list(out["record"].values) == series and list(out["lead"].values) == ["I", "II"]
    np.testing.assert_array_equal(out["age"].values, da["age"].values)
    np.testing.assert_array_equal(out["time"].values, da["time"].values[::2])
    assert out.attrs == {"fs": FS / 2, "units": "mV"}
    np.testing.assert_allclose(out.values, clone(prep).fit_transform(X), rtol=1e-12, atol=1e-12)

    # The same preprocessing in front of the classifier: DataArray in, same answer as numpy.
    full = Pipeline([*prep.steps, ("clf", _mamba_classifier())])
    pred_da = full.fit(da, y).predict(da)
    pred_np = clone(full).fit(X, y).predict(X)
    np.testing.assert_array_equal(np.asarray(pred_da), pred_np)
    if isinstance(pred_da, xr.DataArray):
        assert list(pred_da["record"].values) == series
