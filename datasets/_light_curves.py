"""Synthetic labelled variable-star light curves with survey-like cadence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._random import check_positive, check_random_state, check_range

__all__ = ["make_light_curves"]

CLASSES = ("eclipsing", "pulsating", "transit", "constant")
# Period ranges (days) per class: contact/detached binaries, RR Lyrae to
# short-period Cepheids, hot to warm Jupiters.
_PERIODS = {"eclipsing": (0.5, 10.0), "pulsating": (0.3, 10.0), "transit": (1.0, 10.0)}
_NIGHT_LENGTH = 0.35  # days of darkness used per night (~8.4 h)
_SEASON = 0.7  # fraction of the year the field is observable
_WEATHER_LOSS = 0.3  # fraction of nights lost to weather


def _cadence(
    rng: np.random.Generator, n_points: int, duration: float, irregular: bool
) -> np.ndarray:
    """Observation times (days), sorted.

    Regular: ``n_points`` equally spaced times. Irregular: a ground-based
    survey. The field is observable for 70 % of each year (a seasonal gap of
    ~110 d), 30 % of the nights are lost to weather, and each observation
    falls at a random time in the ~8.4 h of a usable night. This gives the
    daily, seasonal and random gaps of real surveys (e.g. MACHO, OGLE, ZTF).
    """
    if not irregular:
        return np.arange(n_points) * (duration / n_points)
    nights = np.arange(int(np.ceil(duration)))
    season_start = rng.uniform(0, 365.25)
    in_season = ((nights + season_start) % 365.25) < _SEASON * 365.25
    clear = rng.uniform(size=nights.size) >= _WEATHER_LOSS
    usable = nights[in_season & clear]
    if usable.size == 0:  # a very short baseline that fell in the gap
        usable = nights
    chosen = rng.choice(usable, size=n_points, replace=True)
    times = chosen + rng.uniform(0, _NIGHT_LENGTH, size=n_points)
    return np.sort(np.clip(times, 0, duration))


def _wrap(phase: np.ndarray) -> np.ndarray:
    """Phase distance to 0 in [-0.5, 0.5)."""
    return (phase + 0.5) % 1.0 - 0.5


def _pulsating(rng, phase):
    # RR Lyrae-like: a skewed sawtooth from a Fourier series whose harmonics
    # fall off geometrically with fixed phase offsets (fast rise, slow decline).
    amp = rng.uniform(0.05, 0.3)
    ratio = rng.uniform(0.3, 0.6)
    k = np.arange(1, 5)[:, None]

    def shape(ph):
        return np.sum(ratio ** (k - 1) * np.sin(2 * np.pi * k * ph + (k - 1) * 0.7), axis=0)

    # Normalise on a dense phase grid so that `amp` is the exact semi-amplitude.
    grid = shape(np.linspace(0.0, 1.0, 4097))
    mid, half = (grid.max() + grid.min()) / 2, (grid.max() - grid.min()) / 2
    return 1.0 + amp * (shape(phase) - mid) / half, amp


def _eclipsing(rng, phase):
    # Primary eclipse at phase 0, secondary at 0.5, Gaussian-shaped dips.
    depth1 = rng.uniform(0.1, 0.5)
    depth2 = depth1 * rng.uniform(0.1, 0.9)
    width = rng.uniform(0.02, 0.06)
    flux = 1.0 - depth1 * np.exp(-0.5 * (_wrap(phase) / width) ** 2)
    flux -= depth2 * np.exp(-0.5 * (_wrap(phase - 0.5) / width) ** 2)
    return flux, depth1


def _transit(rng, phase):
    # Trapezoid: total duration q (fraction of the period), ingress and
    # egress each 20 % of it, flat bottom at 1 - depth.
    depth = rng.uniform(0.005, 0.03)
    q = rng.uniform(0.02, 0.06)
    x = np.abs(_wrap(phase)) / (q / 2)  # 0 at mid-transit, 1 at contact
    shape = np.clip((1.0 - x) / 0.2, 0.0, 1.0)
    return 1.0 - depth * shape, depth


_SHAPES = {"pulsating": _pulsating, "eclipsing": _eclipsing, "transit": _transit}


def make_light_curves(
    n_samples: int = 100,
    *,
    classes: Sequence[str] = CLASSES,
    n_points: int = 200,
    duration: float = 365.0,
    irregular: bool = True,
    noise: float = 0.005,
    period_range: tuple[float, float] | None = None,
    return_params: bool = False,
    random_state=None,
):
    """Labelled synthetic light curves of variable stars with realistic gaps.

    Four classes, in relative flux (1 = the star's mean out-of-event
    brightness):

    ``"pulsating"``
        RR Lyrae / Cepheid-like skewed sawtooth (4 Fourier harmonics),
        semi-amplitude 5-30 %, period 0.3-10 d.
    ``"eclipsing"``
        Eclipsing binary: a primary eclipse of depth 10-50 % and a shallower
        secondary half a period later, period 0.5-10 d.
    ``"transit"``
        Planetary transit: a trapezoidal dip of 0.5-3 % lasting 2-6 % of the
        period, period 1-10 d.
    ``"constant"``
        No variability.

    Periods are drawn log-uniformly, and each curve gets a random epoch.

    Parameters
    ----------
    n_samples : int, default 100
        Number of curves; the classes are as balanced as possible, in random
        order.
    classes : sequence of str, default all four
        Which classes to draw from.
    n_points : int, default 200
        Observations per curve.
    duration : float, default 365.0
        Baseline in days.
    irregular : bool, default True
        Ground-based survey cadence: the field is observable 70 % of the
        year, 30 % of the nights are lost to weather and observations fall
        at random times in the ~8.4 h of usable nights (daily, seasonal and
        random gaps). ``False``: equally spaced observations.
    noise : float, default 0.005
        Typical standard deviation of the white Gaussian photometric noise,
        in relative flux. With ``irregular=True`` each night's conditions
        (seeing, airmass, moon) scale it by a log-normal factor (median 1,
        sigma 0.3 in log), so the errors vary from night to night as in real
        photometry; with ``irregular=False`` it is constant.
    period_range : (float, float), optional
        Override the per-class period ranges (days).
    return_params : bool, default False
        Also return a dict of the true parameters.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    time : ndarray of float64, shape (n_samples, n_points)
        Observation times in days from the start, sorted per curve.
    flux : ndarray of float64, shape (n_samples, n_points)
        Relative flux, time last.
    y : ndarray of str, shape (n_samples,)
        Class labels.
    params : dict of ndarray, shape (n_samples,)
        Only with ``return_params=True``: ``"period"`` (d; NaN for
        ``"constant"``), ``"amplitude"`` (semi-amplitude for pulsating,
        primary depth for eclipsing, depth for transit; 0 for constant) and
        ``"epoch"`` (d; time of phase 0: maximum-phase reference, primary
        eclipse or mid-transit), and ``"flux_err"`` (shape ``(n_samples,
        n_points)``, the standard deviation of the noise of each point).

    See Also
    --------
    load_macho, load_kepler_hatp7 : real light curves.

    References
    ----------
    .. [1] Richards JW et al. On machine-learned classification of variable
       stars with sparse and noisy time-series data. ApJ 733:10 (2011).
    .. [2] VanderPlas JT. Understanding the Lomb-Scargle periodogram. ApJS
       236:16 (2018).

    Examples
    --------
    >>> import numpy as np
    >>> from sciamba.datasets import make_light_curves
    >>> t, flux, y, p = make_light_curves(8, return_params=True, random_state=0)
    >>> t.shape, flux.shape, sorted(set(y.tolist()))
    ((8, 200), (8, 200), ['constant', 'eclipsing', 'pulsating', 'transit'])
    >>> bool(np.all(np.diff(t, axis=1) >= 0))
    True
    """
    check_positive("n_samples", n_samples, integer=True)
    check_positive("n_points", n_points, integer=True)
    check_positive("duration", duration)
    if isinstance(classes, str):
        raise TypeError("classes must be a sequence of class names, e.g. ('pulsating',)")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if not classes or unknown:
        raise ValueError(f"classes must be a non-empty subset of {CLASSES}, got {classes}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if period_range is not None:
        lo, hi = check_range("period_range", period_range)
        if lo <= 0:
            raise ValueError(f"period_range must be positive, got {period_range}")
    rng = check_random_state(random_state)
    labels = np.array([classes[i % len(classes)] for i in range(n_samples)])
    labels = labels[rng.permutation(n_samples)]
    time = np.empty((n_samples, n_points))
    flux = np.empty((n_samples, n_points))
    period = np.full(n_samples, np.nan)
    amplitude = np.zeros(n_samples)
    epoch = np.zeros(n_samples)
    for i, label in enumerate(labels):
        t = _cadence(rng, n_points, duration, irregular)
        time[i] = t
        if label == "constant":
            flux[i] = 1.0
            continue
        lo, hi = period_range if period_range is not None else _PERIODS[label]
        period[i] = np.exp(rng.uniform(np.log(lo), np.log(hi)))
        epoch[i] = rng.uniform(0, period[i])
        phase = (t - epoch[i]) / period[i] % 1.0
        flux[i], amplitude[i] = _SHAPES[label](rng, phase)
    flux_err = np.full(flux.shape, float(noise))
    if irregular:
        night = np.floor(time).astype(np.int64)  # (n_samples, n_points)
        conditions = rng.lognormal(0.0, 0.3, size=(n_samples, int(np.ceil(duration)) + 1))
        flux_err *= np.take_along_axis(conditions, night, axis=1)
    if noise > 0:
        flux += rng.normal(0.0, 1.0, size=flux.shape) * flux_err
    if return_params:
        params = {"period": period, "amplitude": amplitude, "epoch": epoch, "flux_err": flux_err}
        return time, flux, labels, params
    return time, flux, labels
