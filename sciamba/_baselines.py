"""Classical forecasting baselines: the yardsticks a learned forecaster must beat.

A forecast is only worth something relative to what a one-line method gives.
This module holds the two baselines the command-line report uses:

* the *naive* (random-walk) forecast, :math:`\\hat y_{T+h} = y_T`, and
* an autoregressive model AR(:math:`p`) fitted by ordinary least squares, with
  :math:`p` optionally chosen by Akaike's information criterion, and iterated
  forward for multi-step forecasts.

Both work on one series (1-D, time last) or on a batch ``(n_series, n_timesteps)``,
fitting one model per series. They need finite values: fill gaps first.

References
----------
.. [1] Hyndman, R. J. and Athanasopoulos, G. (2021). *Forecasting: Principles
   and Practice*, 3rd ed., OTexts, sections 5.2 (simple methods) and 9.3
   (autoregressive models).
.. [2] Brockwell, P. J. and Davis, R. A. (2016). *Introduction to Time Series
   and Forecasting*, 3rd ed., Springer, section 5.1 (AR fitting) and 5.5 (AIC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg

__all__ = ["ARFit", "ar_fit", "ar_forecast", "ar_select_order", "naive_forecast", "forecast_errors"]


def _as_series_batch(y: ArrayLike, name: str = "y") -> tuple[NDArray[np.float64], bool]:
    """Return ``y`` as a float64 ``(n_series, n_timesteps)`` array and whether it was 1-D."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (one series) or 2-D (n_series, n_timesteps); got shape {arr.shape}"
        )
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} is empty: a forecast needs at least one observed value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values; the baselines need a gap-free series "
            "(fill gaps first, e.g. with sciamba.preprocessing.FillMissing)"
        )
    return np.atleast_2d(arr), arr.ndim == 1


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    return int(horizon)


def naive_forecast(y: ArrayLike, horizon: int) -> NDArray[np.float64]:
    """Naive (random-walk) forecast: repeat the last observed value.

    .. math:: \\hat y_{T+h \\mid T} = y_T, \\qquad h = 1, \\dots, H

    Parameters
    ----------
    y : array_like, shape (n_timesteps,) or (n_series, n_timesteps)
        Observed history, time last; must be finite.
    horizon : int
        Number of steps :math:`H` to forecast.

    Returns
    -------
    ndarray, shape (horizon,) or (n_series, horizon)
        The forecast, with the same leading shape as ``y``.

    Examples
    --------
    >>> from sciamba._baselines import naive_forecast
    >>> naive_forecast([1.0, 2.0, 5.0], horizon=2)
    array([5., 5.])
    """
    arr, one_d = _as_series_batch(y)
    horizon = _check_horizon(horizon)
    out = np.repeat(arr[:, -1:], horizon, axis=1)  # (S H)
    return out[0] if one_d else out


@dataclass(frozen=True)
class ARFit:
    """A fitted AR(p) model :math:`y_t = c + \\sum_{i=1}^p \\phi_i y_{t-i} + \\varepsilon_t`.

    Attributes
    ----------
    intercept : float
        The constant :math:`c`.
    coef : ndarray, shape (p,)
        :math:`(\\phi_1, \\dots, \\phi_p)`; ``coef[0]`` multiplies the most recent value.
    sigma2 : float
        Residual variance (maximum-likelihood estimate, divided by the number of residuals).
    n_obs : int
        Number of residuals the fit used.
    """

    intercept: float
    coef: NDArray[np.float64]
    sigma2: float
    n_obs: int

    @property
    def order(self) -> int:
        """The order :math:`p`."""
        return int(self.coef.shape[0])


def _lag_matrix(y: NDArray[np.float64], order: int, start: int) -> NDArray[np.float64]:
    """Design matrix ``[1, y[t-1], ..., y[t-order]]`` for ``t = start .. len(y)-1``."""
    n_rows = y.shape[0] - start
    cols = [np.ones(n_rows)]
    cols += [y[start - i : y.shape[0] - i] for i in range(1, order + 1)]
    return np.column_stack(cols)  # (n_rows, 1 + order)


def _ar_lstsq(y: NDArray[np.float64], order: int, start: int) -> ARFit:
    design = _lag_matrix(y, order, start)  # (N, 1+p)
    target = y[start:]  # (N,)
    beta, *_ = linalg.lstsq(design, target)
    resid = target - design @ beta
    return ARFit(
        intercept=float(beta[0]),
        coef=np.asarray(beta[1:], dtype=np.float64),
        sigma2=float(np.mean(resid**2)),
        n_obs=int(target.shape[0]),
    )


def _check_order(order: int, n_timesteps: int, name: str = "order") -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {order!r}")
    # Need more equations than the 1 + order unknowns.
    if n_timesteps < 2 * int(order) + 2:
        raise ValueError(
            f"series too short for an AR({order}) fit: it has {n_timesteps} values and needs at "
            f"least {2 * int(order) + 2}; use a smaller {name} or a longer series"
        )
    return int(order)


def ar_fit(y: ArrayLike, order: int) -> ARFit:
    """Fit an AR(p) model with intercept by ordinary (conditional) least squares.

    Minimises :math:`\\sum_{t=p}^{T-1} (y_t - c - \\sum_{i=1}^p \\phi_i y_{t-i})^2`,
    conditioning on the first :math:`p` values [2]_.

    Parameters
    ----------
    y : array_like, shape (n_timesteps,)
        One finite series.
    order : int
        The order :math:`p \\ge 0` (0 fits the mean).

    Returns
    -------
    ARFit
        Intercept, coefficients, residual variance and number of residuals.

    Raises
    ------
    ValueError
        If ``y`` is not 1-D and finite, or has fewer than ``2 * order + 2`` values.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba._baselines import ar_fit
    >>> y = 0.5 ** np.arange(10.0)          # y[t] = 0.5 * y[t-1] exactly
    >>> fit = ar_fit(y, order=1)
    >>> round(float(fit.coef[0]), 6), round(fit.intercept, 6)
    (0.5, 0.0)
    """
    arr, one_d = _as_series_batch(y)
    if not one_d:
        raise ValueError(f"ar_fit takes one series (1-D); got shape {np.shape(y)}")
    order = _check_order(order, arr.shape[1])
    return _ar_lstsq(arr[0], order, start=order)


def ar_select_order(y: ArrayLike, max_order: int) -> ARFit:
    """Fit AR(p) for ``p = 0 .. max_order`` and keep the one with the smallest AIC.

    All candidates are fitted on the same residual window (``t >= max_order``),
    so their criteria are comparable:
    :math:`\\mathrm{AIC}(p) = N \\log \\hat\\sigma_p^2 + 2 (p + 1)` [2]_.

    Parameters
    ----------
    y : array_like, shape (n_timesteps,)
        One finite series.
    max_order : int
        Largest order tried.

    Returns
    -------
    ARFit
        The selected model, refitted on the whole series.

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba._baselines import ar_select_order
    >>> rng = np.random.default_rng(0)
    >>> e = rng.standard_normal(2000)
    >>> y = np.zeros(2000)
    >>> for t in range(2, 2000):
    ...     y[t] = 1.2 * y[t - 1] - 0.5 * y[t - 2] + e[t]
    >>> ar_select_order(y, max_order=6).order
    2
    """
    arr, one_d = _as_series_batch(y)
    if not one_d:
        raise ValueError(f"ar_select_order takes one series (1-D); got shape {np.shape(y)}")
    max_order = _check_order(max_order, arr.shape[1], name="max_order")
    series = arr[0]
    best_p, best_aic = 0, np.inf
    for p in range(max_order + 1):
        fit = _ar_lstsq(series, p, start=max_order)
        # A perfect fit has sigma2 == 0: log(0) = -inf correctly ranks it first.
        with np.errstate(divide="ignore"):
            aic = fit.n_obs * np.log(fit.sigma2) + 2.0 * (p + 1)
        if aic < best_aic:
            best_p, best_aic = p, aic
    return _ar_lstsq(series, best_p, start=best_p)


def ar_forecast(
    y: ArrayLike, horizon: int, order: int | None = None, *, max_order: int = 20
) -> NDArray[np.float64]:
    """Multi-step AR forecast, iterating the fitted recursion on its own predictions.

    .. math:: \\hat y_{T+h} = c + \\sum_{i=1}^p \\phi_i \\hat y_{T+h-i},
       \\qquad \\hat y_s = y_s \\text{ for } s \\le T

    One model is fitted per series.

    Parameters
    ----------
    y : array_like, shape (n_timesteps,) or (n_series, n_timesteps)
        Observed history, time last; must be finite.
    horizon : int
        Number of steps to forecast.
    order : int, optional
        AR order. ``None`` (default) selects it by AIC up to ``max_order``
        (clipped so the series can support it).
    max_order : int, default 20
        Largest order tried when ``order`` is None.

    Returns
    -------
    ndarray, shape (horizon,) or (n_series, horizon)

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba._baselines import ar_forecast
    >>> y = 2.0 + 0.5 ** np.arange(12.0)    # AR(1) around 2: y[t] - 2 = 0.5 (y[t-1] - 2)
    >>> bool(np.allclose(ar_forecast(y, horizon=3, order=1), 2.0 + 0.5 ** np.arange(12, 15)))
    True
    """
    arr, one_d = _as_series_batch(y)
    horizon = _check_horizon(horizon)
    out = np.empty((arr.shape[0], horizon))  # (S H)
    for s, series in enumerate(arr):
        if order is None:
            # The largest order this series can support, at most max_order.
            cap = min(int(max_order), max((series.shape[0] - 2) // 2, 0))
            fit = ar_select_order(series, cap)
        else:
            fit = ar_fit(series, order)
        out[s] = _iterate_ar(series, fit, horizon)
    return out[0] if one_d else out


def _iterate_ar(series: NDArray[np.float64], fit: ARFit, horizon: int) -> NDArray[np.float64]:
    p = fit.order
    buf = np.concatenate([series[len(series) - p :], np.empty(horizon)])  # (p + H,)
    # coef[0] multiplies the most recent value, so reverse to align with buf's time order.
    phi_rev = fit.coef[::-1]
    for h in range(horizon):
        buf[p + h] = fit.intercept + phi_rev @ buf[h : p + h]
    return buf[p:]


def forecast_errors(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Mean absolute error and root mean squared error of a forecast.

    Parameters
    ----------
    y_true, y_pred : array_like of the same shape
        Observed and forecast values; NaN entries of ``y_true`` are ignored.

    Returns
    -------
    dict
        ``{"mae": ..., "rmse": ...}``.

    Examples
    --------
    >>> from sciamba._baselines import forecast_errors
    >>> forecast_errors([1.0, 2.0], [2.0, 0.0])
    {'mae': 1.5, 'rmse': 1.5811388300841898}
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred shapes differ: {t.shape} vs {p.shape}")
    ok = np.isfinite(t)
    if not ok.any():
        raise ValueError("y_true has no finite values to score against")
    err = p[ok] - t[ok]
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
