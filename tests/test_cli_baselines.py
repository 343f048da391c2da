"""The naive and AR baselines of the command-line report, against independent references."""

import numpy as np
import pytest
from scipy import signal

from sciamba._baselines import (
    ar_fit,
    ar_forecast,
    ar_select_order,
    forecast_errors,
    naive_forecast,
)


def _normal_equations_ar(y, p, start):
    """AR(p) with intercept by the normal equations, design built with a plain loop."""
    rows, target = [], []
    for t in range(start, len(y)):
        rows.append([1.0] + [y[t - i] for i in range(1, p + 1)])
        target.append(y[t])
    X, z = np.array(rows), np.array(target)
    G = X.T @ X
    beta = np.linalg.solve(G, X.T @ z)
    # The normal equations alone lose cond(X)**2 * eps (AR(7) series with poles near 0.9 have
    # cond(X) up to ~1e6: errors of 1e-7 and more, 1.2% of seeds failed rtol=1e-8); refinement with
    # the residual in float64 brings them to about cond(X) * eps (0 of 9000 seeds fail).
    for _ in range(3):
        beta = beta + np.linalg.solve(G, X.T @ (z - X @ beta))
    resid = z - X @ beta
    return beta, float(np.mean(resid**2))


def _stable_ar_series(rng, n, p):
    """A stationary AR(p) series: real poles drawn inside the unit circle, filtered noise."""
    a = np.poly(rng.uniform(-0.9, 0.9, size=p))
    e = rng.standard_normal(n + 200)
    return 3.0 + signal.lfilter([1.0], a, e)[200:]


@pytest.mark.parametrize("p", [0, 1, 3, 7])
def test_ar_fit_matches_normal_equations(rng, p):
    n = int(rng.integers(60, 301)) | 1  # odd lengths too
    y = _stable_ar_series(rng, n, max(p, 1))
    fit = ar_fit(y, p)
    beta, sigma2 = _normal_equations_ar(y, p, start=p)
    np.testing.assert_allclose(fit.intercept, beta[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.coef, beta[1:], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.sigma2, sigma2, rtol=1e-8)
    assert fit.order == p and fit.n_obs == n - p


def test_ar_select_order_is_the_aic_argmin(rng):
    y = _stable_ar_series(rng, int(rng.integers(150, 400)), 3)
    max_order = 8
    aics = []
    for p in range(max_order + 1):
        _, sigma2 = _normal_equations_ar(y, p, start=max_order)
        aics.append((len(y) - max_order) * np.log(sigma2) + 2 * (p + 1))
    fit = ar_select_order(y, max_order)
    assert fit.order == int(np.argmin(aics))
    # ...and the chosen order is refitted on the whole series.
    beta, _ = _normal_equations_ar(y, fit.order, start=fit.order)
    np.testing.assert_allclose(fit.coef, beta[1:], rtol=1e-8, atol=1e-10)


def test_ar_forecast_continues_a_noise_free_recursion(rng):
    # A deterministic AR(2) (damped oscillation around a mean) is fitted exactly,
    # so the iterated forecast must equal the true continuation.
    r, theta = rng.uniform(0.85, 0.97), rng.uniform(0.1, 0.6)
    phi = np.array([2 * r * np.cos(theta), -(r**2)])
    c = rng.uniform(-2, 2)
    n, horizon = int(rng.integers(30, 80)), int(rng.integers(5, 40))
    y = np.empty(n + horizon)
    y[:2] = rng.standard_normal(2)
    for t in range(2, n + horizon):
        y[t] = c + phi[0] * y[t - 1] + phi[1] * y[t - 2]
    pred = ar_forecast(y[:n], horizon, order=2)
    np.testing.assert_allclose(pred, y[n:], rtol=1e-7, atol=1e-8)


def test_ar_forecast_matches_a_plain_loop_and_batches(rng):
    ys = np.stack([_stable_ar_series(rng, 121, 2) for _ in range(3)])  # (3, 121)
    horizon = 17
    pred = ar_forecast(ys, horizon, order=4)
    assert pred.shape == (3, horizon)
    for s in range(3):
        fit = ar_fit(ys[s], 4)
        hist = list(ys[s])
        for _ in range(horizon):
            hist.append(fit.intercept + sum(fit.coef[i] * hist[-1 - i] for i in range(4)))
        np.testing.assert_allclose(pred[s], hist[-horizon:], rtol=1e-10)
        np.testing.assert_allclose(ar_forecast(ys[s], horizon, order=4), pred[s], rtol=1e-12)


def test_ar_forecast_default_order_on_a_short_series_is_clipped(rng):
    y = rng.standard_normal(9)
    assert ar_forecast(y, 3).shape == (3,)  # max_order 20 clipped to what 9 values allow


def test_naive_forecast(rng):
    y = rng.standard_normal((4, 11))
    out = naive_forecast(y, 5)
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out, np.repeat(y[:, -1:], 5, axis=1))
    np.testing.assert_array_equal(naive_forecast(y[0], 2), [y[0, -1]] * 2)


def test_forecast_errors_against_closed_form(rng):
    t, p = rng.standard_normal(13), rng.standard_normal(13)
    t[4] = np.nan
    ok = np.isfinite(t)
    got = forecast_errors(t, p)
    assert got["mae"] == pytest.approx(np.abs(p - t)[ok].mean())
    assert got["rmse"] == pytest.approx(np.sqrt(((p - t)[ok] ** 2).mean()))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: naive_forecast([1.0, np.nan], 2), "NaN or infinite"),
        (lambda: naive_forecast([], 2), "empty"),
        (lambda: naive_forecast(np.ones((2, 2, 2)), 2), "1-D .* or 2-D"),
        (lambda: naive_forecast([1.0], 0), "horizon must be a positive integer"),
        (lambda: naive_forecast([1.0], 2.5), "horizon must be a positive integer"),
        (lambda: ar_fit(np.ones(5), 3), "series too short for an AR\\(3\\)"),
        (lambda: ar_fit(np.ones(50), -1), "non-negative integer"),
        (lambda: ar_fit(np.ones((2, 50)), 1), "one series"),
        (lambda: ar_select_order(np.ones(5), 4), "too short"),
        (lambda: forecast_errors([1.0, 2.0], [1.0]), "shapes differ"),
        (lambda: forecast_errors([np.nan], [1.0]), "no finite values"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
