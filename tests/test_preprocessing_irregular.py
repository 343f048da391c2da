"""Irregular sampling and gaps: LombScargle, Interpolate, FillMissing.

References: ``scipy.signal.lombscargle`` on each unpadded series,
``scipy.interpolate`` (``interp1d``, ``CubicSpline``, ``PchipInterpolator``),
pandas' gap filling, and plain loops for the ``max_gap`` mask.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import interpolate, signal

from sciamba import preprocessing as pp

TOL = dict(rtol=1e-12, atol=1e-12)


def _ragged(rng, n, max_len, channels=None):
    """Per-series sorted random times, NaN-padded to ``max_len``; values likewise."""
    lengths = rng.integers(max_len // 2, max_len + 1, size=n)
    t = np.full((n, max_len), np.nan)
    shape = (n, max_len) if channels is None else (n, channels, max_len)
    x = np.full(shape, np.nan)
    for i, m in enumerate(lengths):
        t[i, :m] = np.sort(rng.uniform(0, 30, m))
        x[i, ..., :m] = 2.0 + np.sin(2 * np.pi * 0.4 * t[i, :m]) + 0.3 * rng.standard_normal(
            (m,) if channels is None else (channels, m))
    return x, t, lengths


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("floating_mean", [True, False])
def test_lombscargle_ragged_matches_scipy(rng, normalize, floating_mean):
    x, t, lengths = _ragged(rng, 4, 61, channels=2)
    freqs = np.sort(rng.uniform(0.02, 1.5, 37))
    est = pp.LombScargle(freqs, normalize=normalize, floating_mean=floating_mean)
    P = est.fit_transform(x, times=t)
    assert P.shape == (4, 2, 37)
    for i, m in enumerate(lengths):
        for c in range(2):
            ref = signal.lombscargle(t[i, :m], x[i, c, :m], 2 * np.pi * freqs,
                                     normalize=normalize, floating_mean=floating_mean)
            np.testing.assert_allclose(P[i, c], ref, **TOL)


def test_lombscargle_weights_and_missing_values(rng):
    L = 53
    t = np.sort(rng.uniform(0, 10, L))
    x = rng.standard_normal((3, L))
    x[0, [3, 17]] = np.nan  # missing observations inside a shared time grid
    w = rng.uniform(0.5, 2.0, (3, L))
    freqs = np.linspace(0.1, 3.0, 11)
    P = pp.LombScargle(freqs).fit_transform(x, times=t, weights=w)
    for i in range(3):
        keep = ~np.isnan(x[i])
        ref = signal.lombscargle(t[keep], x[i, keep], 2 * np.pi * freqs, normalize=True,
                                 weights=w[i, keep], floating_mean=True)
        np.testing.assert_allclose(P[i], ref, **TOL)
    np.testing.assert_allclose(pp.lomb_scargle(x.T, t, freqs, weights=w.T, axis=0), P.T, **TOL)


def test_lombscargle_finds_the_period_of_an_offset_sinusoid(rng):
    f0 = rng.uniform(0.3, 1.2)
    t = np.sort(rng.uniform(0, 40, (5, 200)), axis=1)
    x = 10.0 + np.sin(2 * np.pi * f0 * t) + 0.2 * rng.standard_normal(t.shape)
    freqs = np.linspace(0.05, 2.0, 2000)
    P = pp.LombScargle(freqs).fit_transform(x, times=t)
    np.testing.assert_allclose(freqs[P.argmax(axis=1)], f0, atol=0.01)


def test_lombscargle_dataarray_time_coordinate(rng):
    t = np.sort(rng.uniform(0, 20, 80))
    da = xr.DataArray(rng.standard_normal((80, 3)), dims=("time", "star"),
                      coords={"time": t, "star": ["a", "b", "c"]}, attrs={"band": "V"})
    freqs = np.array([0.1, 0.5, 0.9])
    out = pp.LombScargle(freqs).fit_transform(da)
    assert out.dims == ("star", "frequency") and out.attrs == {"band": "V"}
    np.testing.assert_array_equal(out["frequency"].values, freqs)
    np.testing.assert_array_equal(out["star"].values, ["a", "b", "c"])
    for j in range(3):
        ref = signal.lombscargle(t, da.values[:, j], 2 * np.pi * freqs, normalize=True,
                                 floating_mean=True)
        np.testing.assert_allclose(out.values[j], ref, **TOL)


def test_lombscargle_too_few_samples_gives_nan(rng):
    x = rng.standard_normal((2, 10))
    x[1, 1:] = np.nan
    P = pp.LombScargle([0.1, 0.2]).fit_transform(x)
    assert np.isnan(P[1]).all() and np.isfinite(P[0]).all()


@pytest.mark.parametrize(
    "method, make",
    [
        ("linear", lambda t, y: interpolate.interp1d(t, y)),
        ("cubic", lambda t, y: interpolate.CubicSpline(t, y)),
        ("pchip", lambda t, y: interpolate.PchipInterpolator(t, y)),
    ],
)
def test_interpolate_matches_scipy_interpolate(rng, method, make):
    x, t, lengths = _ragged(rng, 3, 47, channels=2)
    step = float(rng.uniform(0.1, 0.5))
    est = pp.Interpolate(step, method=method)
    out = est.fit_transform(x, times=t)
    lo, hi = np.nanmin(t), np.nanmax(t)
    grid = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
    assert out.shape == (3, 2, grid.size)
    for i, m in enumerate(lengths):
        inside = (grid >= t[i, 0]) & (grid <= t[i, m - 1])
        for c in range(2):
            ref = make(t[i, :m], x[i, c, :m])(grid[inside])
            np.testing.assert_allclose(out[i, c, inside], ref, rtol=1e-10, atol=1e-10)
            assert np.isnan(out[i, c, ~inside]).all()
    g, y = pp.interpolate_series(x, t, step, method=method)
    np.testing.assert_allclose(g, grid, **TOL)
    np.testing.assert_array_equal(y, out)


def test_interpolate_is_exact_for_polynomials(rng):
    t = np.sort(rng.uniform(0, 5, 25))
    line = 1.5 - 0.7 * t
    cubic = 0.2 * t**3 - t + 1.0
    grid, y = pp.interpolate_series(np.stack([line, cubic]), t, 0.1, method="linear")
    inside = ~np.isnan(y[0])
    np.testing.assert_allclose(y[0, inside], 1.5 - 0.7 * grid[inside], atol=1e-12)
    grid, y = pp.interpolate_series(cubic[None], t, 0.1, method="cubic")
    inside = ~np.isnan(y[0])
    np.testing.assert_allclose(y[0, inside], 0.2 * grid[inside] ** 3 - grid[inside] + 1.0,
                               atol=1e-9)


def test_interpolate_max_gap_mask_against_loop(rng):
    t = np.cumsum(rng.exponential(1.0, 60))
    x = rng.standard_normal((1, 60))
    max_gap = float(rng.uniform(0.8, 2.0))
    grid, y = pp.interpolate_series(x, t, 0.25, max_gap=max_gap)
    for k, g in enumerate(grid):
        j = np.searchsorted(t, g, side="right")
        on_sample = j > 0 and t[j - 1] == g
        expect_nan = not on_sample and (j == len(t) or t[j] - t[j - 1] > max_gap)
        assert np.isnan(y[0, k]) == expect_nan, (k, g)
        if not expect_nan:
            np.testing.assert_allclose(y[0, k], np.interp(g, t, x[0]), **TOL)


def test_interpolate_dataarray_datetime(rng):
    base = np.datetime64("2026-01-01T00:00:00", "ns")
    seconds = np.sort(rng.choice(np.arange(0, 600, 7), 40, replace=False)).astype(float)
    times = base + (seconds * 1e9).astype("timedelta64[ns]")
    hr = xr.DataArray(rng.normal(70, 5, (2, 40)), dims=("patient", "time"),
                      coords={"time": times, "patient": ["p1", "p2"]}, attrs={"units": "bpm"})
    out = pp.Interpolate(step=30.0, max_gap=60.0).fit_transform(hr)
    grid = seconds[0] + 30.0 * np.arange(int((seconds[-1] - seconds[0]) // 30) + 1)
    assert out["time"].dtype.kind == "M"
    np.testing.assert_array_equal(out["time"].values,
                                  base + (grid * 1e9).astype("timedelta64[ns]"))
    assert out.attrs == {"units": "bpm", "fs": 1 / 30.0}
    np.testing.assert_array_equal(out["patient"].values, ["p1", "p2"])
    _, ref = pp.interpolate_series(hr.values, seconds, 30.0, max_gap=60.0)
    np.testing.assert_array_equal(out.values, ref)


def test_interpolate_then_filter_pipeline_on_vitals(rng):
    # Irregular vitals -> regular grid -> fill short holes -> low-pass, all coords kept.
    from sklearn.pipeline import make_pipeline

    t = np.cumsum(rng.uniform(0.5, 1.5, 300))
    da = xr.DataArray(rng.standard_normal((3, 300)), dims=("patient", "time"),
                      coords={"time": t, "patient": [1, 2, 3]})
    pipe = make_pipeline(pp.Interpolate(1.0), pp.FillMissing(), pp.Butterworth(0.1, fs=1.0))
    out = pipe.fit_transform(da)
    assert out.attrs["fs"] == 1.0 and np.isfinite(out.values).all()
    np.testing.assert_allclose(np.diff(out["time"].values), 1.0, **TOL)
    np.testing.assert_array_equal(out["patient"].values, [1, 2, 3])


@pytest.mark.parametrize(
    "method, reference",
    [
        ("linear", lambda df: df.interpolate(method="linear", limit_direction="both")),
        ("ffill", lambda df: df.ffill().bfill()),
        ("zero", lambda df: df.fillna(0.0)),
    ],
)
def test_fill_missing_matches_pandas(rng, method, reference):
    x = rng.standard_normal((4, 3, 57))
    x[rng.uniform(size=x.shape) < 0.3] = np.nan
    x[..., 0] = np.where(rng.uniform(size=(4, 3)) < 0.5, np.nan, x[..., 0])  # leading gaps
    x[..., 1] = 0.5  # every series has an observation
    out = pp.FillMissing(method).fit_transform(x)
    flat = x.reshape(-1, 57)
    ref = reference(pd.DataFrame(flat.T)).to_numpy().T.reshape(x.shape)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(pp.fill_missing(np.moveaxis(x, -1, 0), method, axis=0),
                               np.moveaxis(ref, -1, 0), **TOL)


def test_fill_missing_keeps_observed_values_and_dataarray(rng):
    x = rng.standard_normal((2, 40))
    obs = rng.uniform(size=x.shape) > 0.2
    obs[:, 0] = True
    da = xr.DataArray(np.where(obs, x, np.nan), dims=("s", "time"),
                      coords={"time": np.arange(40) * 0.5})
    out = pp.FillMissing().fit_transform(da)
    np.testing.assert_array_equal(out.values[obs], x[obs])
    np.testing.assert_array_equal(out["time"].values, da["time"].values)


def test_times_reach_lombscargle_inside_a_pipeline_by_metadata_routing(rng):
    import sklearn
    from sklearn.pipeline import Pipeline

    t = np.sort(rng.uniform(0, 10, (4, 50)), axis=1)
    X = np.sin(2 * np.pi * 0.3 * t) + 0.1 * rng.standard_normal(t.shape)
    freqs = np.linspace(0.1, 1.0, 7)
    with sklearn.config_context(enable_metadata_routing=True):
        ls = (pp.LombScargle(freqs).set_fit_request(times=True, weights=False)
              .set_transform_request(times=True, weights=False))
        pipe = Pipeline([("ls", ls), ("scale", pp.Standardize())])
        out = pipe.fit_transform(X, times=t)
        again = pipe.transform(X, times=t)
    ref = pp.standardize(pp.lomb_scargle(X, t, freqs))
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(again, ref, **TOL)
