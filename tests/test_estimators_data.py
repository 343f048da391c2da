"""Input handling of the estimators: layout, NaN, gaps, times, xarray."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from sklearn.base import BaseEstimator

from sciamba.estimators import MambaClassifier, MambaForecaster, MambaRegressor
from sciamba.estimators._data import _gaps, as_panel, future_times, nan_mean_std
from sciamba.estimators._forecaster import pinball_loss
from sciamba.estimators._network import SeriesNetwork

TINY = dict(d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=2, device="cpu", random_state=0)


class _Holder(BaseEstimator):
    """Stands in for an estimator: as_panel records fitted layout on it."""


def _gaps_loop(x, times):
    # Reference: walk each series, remember the last observed instant.
    n, T = x.shape
    out = np.zeros((n, T))
    for i in range(n):
        last = None
        for t in range(T):
            if np.isnan(x[i, t]):
                continue
            out[i, t] = 1.0 if last is None else times[i][t] - last
            last = times[i][t]
    return out


def test_gaps_match_a_plain_loop(rng):
    n, T = 5, 37
    x = rng.standard_normal((n, T))
    x[rng.random((n, T)) < 0.3] = np.nan
    x[:, 0] = np.nan  # leading padding
    x[:, -1] = 1.0
    t = np.cumsum(rng.uniform(0.5, 2.0, (n, T)), axis=1)
    obs = np.isfinite(x)
    assert np.allclose(_gaps(obs, t, 1.0), _gaps_loop(x, t))
    # Without times the index is the clock: a run of k NaN gives a gap of k + 1.
    idx = np.broadcast_to(np.arange(T, dtype=float), (n, T))
    assert np.allclose(_gaps(obs, None, 1.0), _gaps_loop(x, idx))


def test_nan_mean_std_matches_numpy(rng):
    v = rng.standard_normal((4, 3, 29)) * 5 + 2
    v[rng.random(v.shape) < 0.2] = np.nan
    m, s = nan_mean_std(v, axis=(2,))
    assert np.allclose(m[..., 0], np.nanmean(v, axis=2))
    assert np.allclose(s[..., 0], np.nanstd(v, axis=2))
    m0, s0 = nan_mean_std(np.ones((2, 1, 5)), axis=(2,))
    assert np.all(s0 == 1.0)  # constant series: scale 1, no division by zero


def test_pinball_loss_matches_formula_and_is_minimized_by_the_quantile(rng):
    y = rng.standard_normal(501)
    levels = np.array([0.1, 0.5, 0.83])
    pred = rng.standard_normal((501, 3))
    got = pinball_loss(torch.tensor(pred), torch.tensor(y), torch.tensor(levels)).numpy()
    e = y[:, None] - pred
    ref = np.where(e >= 0, levels * e, (levels - 1) * e)
    assert np.allclose(got, ref)
    # The mean loss over a sample is minimized at its empirical quantile.
    grid = np.linspace(-3, 3, 601)
    mean_loss = pinball_loss(
        torch.tensor(grid)[:, None, None].expand(-1, 1, levels.size),  # (G 1 Q)
        torch.tensor(y)[None, :],  # (1 n)
        torch.tensor(levels),
    ).mean(dim=1).numpy()  # (G Q)
    best = grid[np.argmin(mean_loss, axis=0)]
    for tau, b in zip(levels, best):
        assert abs(b - np.quantile(y, tau, method="inverted_cdf")) <= 0.01 + 1e-12


@pytest.mark.parametrize("backbone", ["mamba", "lstm"])
@pytest.mark.parametrize("pooled", [True, False])
def test_left_padding_does_not_change_outputs(rng, backbone, pooled):
    # Unequal lengths are batched by left padding (input 0, gap 0); outputs at
    # the real positions, and pooled outputs, must not see the padding.
    torch.manual_seed(int(rng.integers(1 << 30)))
    net = SeriesNetwork(2, 3, backbone=backbone, d_model=8, n_layers=2, pooled=pooled,
                        d_state=4, expand=2, bidirectional=pooled, causal=not pooled).double().eval()
    L, pad = 13, 6
    x = torch.tensor(rng.standard_normal((1, L, 2)))
    g = torch.ones(1, L, dtype=torch.float64)
    xp = torch.cat([torch.zeros(1, pad, 2, dtype=torch.float64), x], dim=1)
    gp = torch.cat([torch.zeros(1, pad, dtype=torch.float64), g], dim=1)
    with torch.no_grad():
        a, b = net(x, g), net(xp, gp)
    if backbone == "lstm":
        # Without gap support the padded steps are read (with an "unobserved"
        # flag), so only the shape contract holds.
        assert b.shape[-1] == a.shape[-1]
        return
    if pooled:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    else:
        torch.testing.assert_close(a, b[:, pad:], rtol=1e-10, atol=1e-10)


def test_layouts_1d_2d_3d_and_errors():
    est = _Holder()
    p, _ = as_panel(est, np.arange(5.0), reset=True)
    assert p.values.shape == (1, 1, 5) and est.n_features_in_ == 5
    p, _ = as_panel(est, np.ones((3, 7)), reset=True)
    assert p.values.shape == (3, 1, 7) and est.n_features_in_ == 7
    p, _ = as_panel(est, np.ones((3, 2, 7)), reset=True)
    assert p.values.shape == (3, 2, 7) and est.n_features_in_ == 2
    with pytest.raises(ValueError, match="4-D input"):
        as_panel(est, np.ones((2, 2, 2, 2)), reset=True)
    with pytest.raises(ValueError, match="all NaN"):
        as_panel(est, np.array([[1.0, 2.0], [np.nan, np.nan]]), reset=True)
    with pytest.raises(ValueError, match="numeric"):
        as_panel(est, np.array([["a", "b"]]), reset=True)
    with pytest.raises(ValueError, match="infinity"):
        as_panel(est, np.array([[1.0, np.inf]]), reset=True)
    with pytest.raises(ValueError, match="ragged"):
        as_panel(est, [[1.0, 2.0], [1.0]], reset=True)
    as_panel(est, np.ones((3, 2, 7)), reset=True)
    with pytest.raises(ValueError, match="Reshape your data"):
        as_panel(est, np.ones((2, 7)), reset=False)
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        as_panel(est, np.ones((3, 2, 5)), reset=False)


def test_times_validation_and_units(rng):
    est = _Holder()
    x = rng.standard_normal((2, 6))
    t = np.array([0.0, 0.5, 1.0, 2.0, 2.5, 3.0])
    p, _ = as_panel(est, x, reset=True, times=t)
    assert est._time_step == 0.5  # the median spacing is the unit
    assert np.allclose(p.gaps[0], [1, 1, 1, 2, 1, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        as_panel(est, x, reset=True, times=t[::-1])
    with pytest.raises(ValueError, match="6 time steps"):
        as_panel(est, x, reset=True, times=t[:4])
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        as_panel(est, x, reset=True, times=np.zeros((3, 6)))
    dt = np.datetime64("2020-01-01") + np.array([0, 1, 2, 4, 5, 6]).astype("timedelta64[D]")
    p, _ = as_panel(est, x, reset=True, times=dt)
    assert np.allclose(p.gaps[0], [1, 1, 1, 2, 1, 1])


def test_dataarray_input_time_moved_last_and_coords_returned(rng):
    n, T = 12, 20
    values = rng.standard_normal((T, n))  # time first on purpose
    da = xr.DataArray(values, dims=("time", "star"),
                      coords={"time": np.arange(T) * 2.0, "star": [f"s{i}" for i in range(n)]})
    y = np.repeat([0, 1], n // 2)
    clf = MambaClassifier(**TINY).fit(da, y)
    assert clf.n_features_in_ == T
    out = clf.predict(da)
    assert isinstance(out, xr.DataArray) and out.dims == ("star",)
    assert list(out["star"].values) == list(da["star"].values)
    proba = clf.predict_proba(da)
    assert proba.dims == ("star", "class") and list(proba["class"].values) == [0, 1]
    # Same numbers as the plain array in time-last layout.
    assert np.array_equal(proba.values, clf.predict_proba(values.T))
    reg = MambaRegressor(**TINY).fit(da, rng.standard_normal(n))
    assert reg.predict(da).dims == ("star",)


def test_dataarray_forecast_continues_the_time_coordinate(rng):
    T = 30
    time = np.datetime64("2001-01-01") + np.arange(T).astype("timedelta64[D]")
    da = xr.DataArray(rng.standard_normal((2, 3, T)), dims=("site", "band", "time"),
                      coords={"time": time, "band": ["u", "g", "r"]}, name="flux")
    f = MambaForecaster(horizon=4, **TINY).fit(da)
    out = f.predict(da)
    assert out.dims == ("site", "band", "time") and out.shape == (2, 3, 4)
    assert out.name == "flux" and list(out["band"].values) == ["u", "g", "r"]
    expected = time[-1] + np.arange(1, 5).astype("timedelta64[D]")
    assert np.array_equal(out["time"].values, expected.astype("datetime64[ns]"))
    # Numeric coordinate with a regular step.
    da1 = xr.DataArray(rng.standard_normal(T), dims="time", coords={"time": 1700 + np.arange(T)})
    f1 = MambaForecaster(horizon=3, **TINY).fit(da1)
    out1 = f1.predict(da1)
    assert out1.dims == ("time",) and list(out1["time"].values) == [1730, 1731, 1732]


@pytest.mark.parametrize(
    "start, freq, periods",
    [
        ("1700-01-01", "YS", 309),  # the yearly sunspot coordinate
        ("1749-01-01", "MS", 3126),  # the monthly sunspot coordinate
        ("1999-01-31", "ME", 13),
        ("2003-07-01", "QS-JUL", 7),
        ("2020-02-27", "D", 9),
        ("2021-03-28 00:00", "h", 50),
        ("2024-01-01", "B", 11),
    ],
)
def test_future_times_calendar_frequencies_continue_exactly(rng, start, freq, periods):
    t = pd.date_range(start, periods=periods, freq=freq)
    horizon = int(rng.integers(1, 40))
    fut = future_times(t.to_numpy(), horizon)
    expected = pd.date_range(t[-1], periods=horizon + 1, freq=freq)[1:].to_numpy()
    assert fut.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(fut, expected)


@pytest.mark.parametrize("freq", ["YS", "MS"])
def test_dataarray_forecast_of_sunspot_like_coords_stays_on_the_calendar(rng, freq):
    # Sunspot-like: a yearly or monthly coordinate long enough that a fixed
    # median step (365 or 31 days) would fall off January 1st / month starts.
    T = 40 if freq == "YS" else 60
    time = pd.date_range("1960-01-01", periods=T, freq=freq)
    da = xr.DataArray(rng.random(T) * 100, dims="time", coords={"time": time.to_numpy()})
    f = MambaForecaster(horizon=12, **TINY).fit(da)
    out = f.predict(da)
    expected = pd.date_range(time[-1], periods=13, freq=freq)[1:].to_numpy()
    np.testing.assert_array_equal(out["time"].values, expected)
    assert len(np.unique(out["time"].values)) == 12


def test_future_times_month_grid_without_a_pandas_frequency():
    # The 15th of every month (and of every other month) has no pandas
    # frequency, but continues by calendar months, skipped months included.
    t = np.array([f"2001-{m:02d}-15T06:00" for m in range(1, 13)], dtype="datetime64[ns]")
    assert [str(x)[:16] for x in future_times(t, 2)] == ["2002-01-15T06:00", "2002-02-15T06:00"]
    t2 = np.array(["2001-01-15", "2001-03-15", "2001-05-15", "2001-06-15", "2001-08-15"],
                  dtype="datetime64[ns]")
    assert [str(x)[:10] for x in future_times(t2, 2)] == ["2001-10-15", "2001-12-15"]


def test_future_times_irregular_datetimes_step_by_the_median(rng):
    days = np.cumsum(rng.integers(1, 5, size=int(rng.integers(4, 20))))
    t = np.datetime64("2010-03-02", "ns") + (days * 86_400_000_000_000).astype("timedelta64[ns]")
    fut = future_times(t, 3)
    step = np.median(np.diff(days)) * 86_400e9
    expected = t[-1] + np.round(step * np.arange(1, 4)).astype("timedelta64[ns]")
    if np.all(np.diff(days) == np.diff(days)[0]):
        expected = pd.date_range(t[-1], periods=4, freq=f"{np.diff(days)[0]}D")[1:].to_numpy()
    np.testing.assert_array_equal(fut, expected)
    # A given time step (the estimators' fitted unit, in ns) replaces the median.
    if not np.all(np.diff(days) == np.diff(days)[0]):
        fut2 = future_times(t, 2, time_step=7 * 86_400e9)
        np.testing.assert_array_equal(np.diff(np.r_[t[-1:], fut2]), np.timedelta64(7, "D"))


def test_future_times_numeric_and_timedelta(rng):
    step = float(rng.uniform(0.1, 3.0))
    t = rng.uniform(-5, 5) + step * np.arange(int(rng.integers(2, 30)))
    np.testing.assert_allclose(future_times(t, 4), t[-1] + step * np.arange(1, 5), rtol=1e-12)
    years = 1700 + np.arange(11)
    out = future_times(years, 3)
    assert out.dtype == years.dtype and list(out) == [1711, 1712, 1713]
    # Irregular numbers: the median spacing, or the given step.
    np.testing.assert_allclose(future_times(np.array([0.0, 1.0, 3.0, 4.0]), 2), [5.0, 6.0])
    np.testing.assert_allclose(future_times(np.array([0.0, 1.0, 3.0]), 2, time_step=0.5), [3.5, 4.0])
    td = np.array([0, 90, 180], dtype="timedelta64[m]")
    np.testing.assert_array_equal(future_times(td, 2), np.array([270, 360], dtype="timedelta64[m]"))
    # NaN/NaT stamps (unobserved steps) are skipped, not continued from.
    np.testing.assert_allclose(future_times(np.array([0.0, 2.0, 4.0, np.nan]), 1), [6.0])
    assert future_times(years, 0).shape == (0,)


def test_future_times_bad_input():
    with pytest.raises(ValueError, match="single stamp"):
        future_times(np.array([3.0]), 2)
    np.testing.assert_allclose(future_times(np.array([3.0]), 2, time_step=2.0), [5.0, 7.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        future_times(np.array([0.0, 2.0, 1.0]), 2)
    with pytest.raises(ValueError, match="horizon must be >= 0"):
        future_times(np.arange(3), -1)
    with pytest.raises(ValueError, match="1-D"):
        future_times(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="no valid"):
        future_times(np.array([np.nan, np.nan]), 1)
    with pytest.raises(TypeError, match="numeric, datetime64 or timedelta64"):
        future_times(np.array(["a", "b"]), 1)


def test_dataarray_without_time_dim_is_rejected():
    da = xr.DataArray(np.ones((3, 5)), dims=("series", "t"))
    with pytest.raises(ValueError, match="'time' dimension"):
        MambaForecaster(**TINY).fit(da)


def test_last_observations_match_a_plain_loop(rng):
    from sciamba.estimators._network import _last_observations

    B, L, C, k = 3, 17, 2, 5
    v = rng.standard_normal((B, L, C))
    obs = rng.random((B, L)) < 0.6
    got = _last_observations(torch.tensor(v), torch.tensor(obs), k).numpy()
    ref = np.zeros((B, L, C, k))
    for b in range(B):
        seen = []
        for t in range(L):
            if obs[b, t]:
                seen.append(v[b, t])
            for j in range(min(k, len(seen))):
                ref[b, t, :, j] = seen[-1 - j]
    assert np.array_equal(got, ref)
