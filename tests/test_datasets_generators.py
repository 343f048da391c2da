"""Generators: make_ecg, make_damped_oscillators, make_light_curves.

Each is checked against an independent reference: R-peak detection with
scipy.signal.find_peaks, the full 3-D McSharry ODE through solve_ivp, the
closed-form free decay of an oscillator, the discrete Lyapunov variance, and
period recovery by Lomb-Scargle (scipy) and box least squares (astropy).
"""

import numpy as np
import pytest
from sciamba.datasets import _ecg_model, make_damped_oscillators, make_ecg, make_light_curves
from scipy import signal as sps
from scipy.integrate import solve_ivp
from scipy.interpolate import PchipInterpolator
from scipy.linalg import solve_discrete_lyapunov
from threadpoolctl import threadpool_limits

# -- make_ecg ----------------------------------------------------------------


def _seed(rng):
    return int(rng.integers(2**31))


def test_make_ecg_heart_rate_from_r_peak_detection(rng):
    fs = 360.0
    for hr in (rng.uniform(45, 80), rng.uniform(80, 150)):
        X, r_peaks, labels = make_ecg(
            2, duration=30, fs=fs, heart_rate=hr, return_annotations=True, random_state=_seed(rng)
        )
        assert X.shape == (2, 10800) and X.dtype == np.float64
        for x, r in zip(X, r_peaks):
            peaks, _ = sps.find_peaks(x, prominence=0.5, distance=0.5 * 60 / hr * fs)
            measured = 60.0 / np.mean(np.diff(peaks) / fs)
            assert abs(measured - hr) < 2.0, (hr, measured)
            # Every annotated R peak away from the ends (find_peaks cannot
            # report a peak at the first or last sample) is found within 2
            # samples (5.6 ms).
            r = r[(r > 5) & (r < x.size - 5)]
            nearest = np.abs(r[:, None] - peaks[None, :]).min(axis=1)
            assert np.all(nearest <= 2)
            # The paper's output range.
            assert x.min() == pytest.approx(-0.4) and x.max() == pytest.approx(1.2)
        assert all(set(lab.tolist()) == {"N"} for lab in labels)


def _paper_forcing(theta, hr):
    # McSharry et al. (2003) Table 1 with the ECGSYN heart-rate scaling,
    # typed in independently of the implementation.
    ti = np.deg2rad([-70.0, -15.0, 0.0, 15.0, 100.0])
    ai = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
    bi = np.array([0.25, 0.1, 0.1, 0.1, 0.4])
    f1 = np.sqrt(hr / 60)
    ti = ti * np.array([np.sqrt(f1), f1, 1, f1, 1])
    bi = bi * f1
    d = np.mod(theta - ti + np.pi, 2 * np.pi) - np.pi
    return -np.sum(ai * d * np.exp(-(d**2) / (2 * bi**2)))


def test_make_ecg_matches_full_3d_ode(rng):
    # Integrate x, y, z of the paper with solve_ivp (x, y start on the unit
    # circle; alpha keeps them there) and compare after the same scaling.
    seed, hr, fs, duration = _seed(rng), float(rng.uniform(55, 100)), 250.0, 3.0
    X = make_ecg(1, duration=duration, fs=fs, heart_rate=hr, random_state=seed)[0]
    r_times, _ = _ecg_model._beat_schedule(np.random.default_rng(seed), duration, hr, 1.0, 0.5, 0.0)
    phase = PchipInterpolator(r_times, 2 * np.pi * np.arange(r_times.size))
    omega = phase.derivative()
    t0 = -_ecg_model._BURN_IN_S

    def rhs(t, s):
        x, y, z = s
        alpha = 1 - np.hypot(x, y)
        w = omega(t)
        z0 = 0.005 * np.sin(2 * np.pi * 0.25 * t)
        theta = np.arctan2(y, x)
        return [alpha * x - w * y, alpha * y + w * x, _paper_forcing(theta, hr) - (z - z0)]

    th0 = phase(t0)
    t_eval = np.arange(X.size) / fs
    sol = solve_ivp(
        rhs,
        (t0, t_eval[-1]),
        [np.cos(th0), np.sin(th0), 0.0],
        t_eval=t_eval,
        rtol=1e-9,
        atol=1e-11,
        max_step=2e-3,
    )
    z = sol.y[2]
    ref = (z - z.min()) * 1.6 / (z.max() - z.min()) - 0.4
    np.testing.assert_allclose(X, ref, atol=1e-3)  # observed ~2e-4


def test_make_ecg_pvc_beats(rng):
    seed = _seed(rng)
    X, r_peaks, labels = make_ecg(
        3, duration=60, pvc_fraction=0.15, return_annotations=True, random_state=seed
    )
    lab = np.concatenate(labels)
    n_v = int(np.sum(lab == "V"))
    # Binomial(~180 beats, 0.15) thinned by the no-two-adjacent rule: 15-45 V.
    assert 10 <= n_v <= 50
    for r, lb in zip(r_peaks, labels):
        rr = np.diff(r)
        v = np.flatnonzero(lb[1:] == "V")  # rr[v] is the interval before a V beat
        v = v[v + 1 < rr.size]
        assert np.all(rr[v] < 0.8 * np.median(rr))  # premature
        assert np.all(rr[v + 1] > 1.15 * np.median(rr))  # compensatory pause
        assert not np.any((lb[1:] == "V") & (lb[:-1] == "V"))
    # beats=True cuts exactly the same windows as load_mitdb_record100.
    Xb, yb = make_ecg(3, duration=60, pvc_fraction=0.15, beats=True, random_state=seed)
    assert Xb.shape[1:] == (1, 252) and yb.dtype == np.dtype("<U1")
    first = [
        (X[0][r - 90 : r + 162], lb)
        for r, lb in zip(r_peaks[0], labels[0])
        if 90 <= r <= X.shape[1] - 162
    ]
    np.testing.assert_array_equal(Xb[: len(first), 0], np.stack([w for w, _ in first]))
    np.testing.assert_array_equal(yb[: len(first)], [lb for _, lb in first])

    # A V beat's QRS is wider than an N beat's: compare the width at half height.
    def width(w):
        return np.sum(w > (w[90] + np.median(w)) / 2)

    assert np.median([width(w[0]) for w in Xb[yb == "V"]]) > np.median(
        [width(w[0]) for w in Xb[yb == "N"]]
    )


def test_make_ecg_reproducible_and_noise(rng):
    seed = _seed(rng)
    a = make_ecg(2, duration=5, random_state=seed)
    np.testing.assert_array_equal(a, make_ecg(2, duration=5, random_state=seed))
    assert not np.array_equal(a, make_ecg(2, duration=5, random_state=seed + 1))
    noisy = make_ecg(2, duration=5, noise=0.05, random_state=seed)
    assert np.std(noisy - a) == pytest.approx(0.05, rel=0.05)
    assert make_ecg(1, duration=2.5, fs=500).shape == (1, 1250)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"heart_rate": 300}, "heart_rate must be within 20-250"),
        ({"heart_rate": -1}, "heart_rate must be a positive"),
        ({"n_samples": 0}, "n_samples must be a positive int"),
        ({"n_samples": 1.5}, "n_samples must be a positive int"),
        ({"fs": float("nan")}, "fs must be a positive finite"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"pvc_fraction": 0.7}, r"pvc_fraction must be in \[0, 0.5\)"),
        ({"duration": 0.001}, "at least 2 samples"),
        ({"beats": True, "pre": -1.0}, "pre >= 0 and post > 0"),
    ],
)
def test_make_ecg_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ecg(**kwargs)


def test_random_state_types():
    with pytest.raises(TypeError, match="random_state must be None"):
        make_ecg(random_state="seed")
    with pytest.raises(ValueError, match="non-negative int"):
        make_ecg(random_state=-3)
    a = make_ecg(duration=2, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(a, make_ecg(duration=2, random_state=np.random.RandomState(0)))
    g = np.random.default_rng(5)
    assert not np.array_equal(
        make_ecg(duration=2, random_state=g), make_ecg(duration=2, random_state=g)
    )


# -- make_damped_oscillators ---------------------------------------------------


def test_oscillators_free_decay_matches_closed_form(rng):
    n, fs = int(rng.integers(5, 12)), float(rng.uniform(50, 200))
    n_t = int(rng.integers(101, 400))
    X, y, systems = make_damped_oscillators(
        n, n_t, fs=fs, drive="initial", return_systems=True, random_state=_seed(rng)
    )
    t = np.arange(n_t) / fs
    for x, (f0, zeta), system in zip(X, y, systems):
        w0 = 2 * np.pi * f0
        assert np.sqrt(-system.A[1, 0]) == pytest.approx(w0)
        assert -system.A[1, 1] == pytest.approx(2 * zeta * w0)
        wd = w0 * np.sqrt(1 - zeta**2)
        # Recover (x0, v0) from the first two samples' closed form, then the
        # whole trajectory must follow it.
        x0 = x[0]
        v0 = (x[1] * np.exp(zeta * w0 / fs) - x0 * np.cos(wd / fs)) * wd / np.sin(
            wd / fs
        ) - zeta * w0 * x0
        ref = np.exp(-zeta * w0 * t) * (
            x0 * np.cos(wd * t) + (v0 + zeta * w0 * x0) / wd * np.sin(wd * t)
        )
        np.testing.assert_allclose(x, ref, atol=1e-9)
        assert x0**2 + (v0 / w0) ** 2 == pytest.approx(1.0)


def test_oscillators_noise_drive_is_stationary_with_lyapunov_variance(rng):
    n, fs = 150, 50.0
    X, y, systems = make_damped_oscillators(
        n,
        400,
        fs=fs,
        freq_range=(1, 5),
        damping_range=(0.1, 0.3),
        return_systems=True,
        random_state=_seed(rng),
    )
    z = []
    with threadpool_limits(limits=1, user_api="blas"):  # tiny matrices: threads only cost
        for x, system in zip(X, systems):
            A, B, C, _, _ = sps.cont2discrete(
                (system.A, system.B, system.C, system.D), 1 / fs, "zoh"
            )
            var = (C @ solve_discrete_lyapunov(A, B @ B.T) @ C.T).item()
            z.append(x / np.sqrt(var))
    z = np.asarray(z)
    # Unit variance at the start (stationary initial state) and overall.
    assert np.var(z[:, :5]) == pytest.approx(1.0, rel=0.3)
    assert np.var(z) == pytest.approx(1.0, rel=0.2)


def test_oscillators_parameters_reproducible_and_noise(rng):
    seed = _seed(rng)
    X, y = make_damped_oscillators(
        20, 64, freq_range=(1, 2), damping_range=(0.05, 0.1), random_state=seed
    )
    assert X.shape == (20, 64) and y.shape == (20, 2)
    assert np.all((y[:, 0] >= 1) & (y[:, 0] <= 2) & (y[:, 1] >= 0.05) & (y[:, 1] <= 0.1))
    X2, y2 = make_damped_oscillators(
        20, 64, freq_range=(1, 2), damping_range=(0.05, 0.1), random_state=seed
    )
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    Xn, _ = make_damped_oscillators(
        20, 64, freq_range=(1, 2), damping_range=(0.05, 0.1), noise=0.1, random_state=seed
    )
    assert np.std(Xn - X) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"freq_range": (1, 60)}, r"inside \(0, fs/2\)"),
        ({"freq_range": (3, 1)}, "min <= max"),
        ({"freq_range": 3}, r"\(min, max\) pair"),
        ({"damping_range": (0.5, 1.0)}, "under-damped"),
        ({"drive": "step"}, "drive must be 'noise' or 'initial'"),
        ({"noise": float("inf")}, "noise must be a finite number"),
        ({"n_timesteps": 0}, "n_timesteps must be a positive int"),
    ],
)
def test_oscillators_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_damped_oscillators(2, **kwargs)


# -- make_light_curves -------------------------------------------------------


def _ls_period(t, f, pmin, pmax, duration):
    freqs = np.arange(1 / pmax, 1 / pmin, 1 / (5 * duration))
    power = sps.lombscargle(t, f - f.mean(), 2 * np.pi * freqs)
    return 1 / freqs[np.argmax(power)]


def test_light_curves_layout_and_cadence(rng):
    n = int(rng.integers(9, 17))
    # Over 800 d at least one whole seasonal gap (~110 d) falls inside.
    t, f, y, p = make_light_curves(
        n, n_points=150, duration=800, return_params=True, random_state=_seed(rng)
    )
    assert t.shape == f.shape == (n, 150) and y.shape == (n,)
    assert np.all(np.diff(t, axis=1) >= 0) and t.min() >= 0 and t.max() <= 800
    counts = np.unique(y, return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # balanced classes
    assert np.all(np.isnan(p["period"][y == "constant"]))
    assert np.all(np.isfinite(p["period"][y != "constant"]))
    for ti in t:
        gaps = np.diff(ti)
        assert gaps.max() > 100  # the seasonal gap
        assert np.mean(gaps < 0.35) > 0.05  # several visits in one night
        # Observations fall in night windows of 0.35 d.
        assert np.all(ti % 1.0 <= 0.35 + 1e-9)
    # Per-point errors: equal within a night, varying between nights, median ~ noise.
    err, night = p["flux_err"], np.floor(t)
    same_night = night[:, 1:] == night[:, :-1]
    np.testing.assert_array_equal(err[:, 1:][same_night], err[:, :-1][same_night])
    assert np.std(np.log(err)) > 0.1 and np.median(err) == pytest.approx(0.005, rel=0.2)
    # The noise actually drawn has those standard deviations.
    seed = _seed(rng)
    _, clean, _ = make_light_curves(n, n_points=150, noise=0.0, random_state=seed)
    _, noisy, _, q = make_light_curves(
        n, n_points=150, noise=0.02, return_params=True, random_state=seed
    )
    assert np.std((noisy - clean) / q["flux_err"]) == pytest.approx(1.0, rel=0.1)
    t_reg, _, _ = make_light_curves(3, n_points=100, duration=50, irregular=False, random_state=0)
    np.testing.assert_allclose(np.diff(t_reg, axis=1), 0.5)


def test_light_curves_noise_free_shapes(rng):
    seed = _seed(rng)
    t, f, y, p = make_light_curves(
        8,
        n_points=4000,
        duration=40,
        irregular=False,
        noise=0.0,
        return_params=True,
        random_state=seed,
    )
    for fi, label, amp in zip(f, y, p["amplitude"]):
        if label == "constant":
            np.testing.assert_array_equal(fi, 1.0)
        elif label == "transit":
            assert fi.max() == 1.0 and 1 - fi.min() == pytest.approx(amp, rel=1e-6)
        elif label == "eclipsing":
            assert 1 - fi.min() == pytest.approx(amp, rel=0.02)
        else:
            assert fi.max() - 1 == pytest.approx(amp, rel=0.02)
    t2, f2, y2 = make_light_curves(
        8, n_points=4000, duration=40, irregular=False, noise=0.0, random_state=seed
    )
    np.testing.assert_array_equal(f, f2)
    np.testing.assert_array_equal(y, y2)
    _, fn, _ = make_light_curves(
        8, n_points=4000, duration=40, irregular=False, noise=0.01, random_state=seed
    )
    assert np.std(fn - f) == pytest.approx(0.01, rel=0.05)


def test_light_curves_periods_recovered_by_lomb_scargle(rng):
    t, f, y, p = make_light_curves(
        6,
        classes=("pulsating", "eclipsing"),
        n_points=300,
        return_params=True,
        random_state=_seed(rng),
    )
    for ti, fi, label, period in zip(t, f, y, p["period"]):
        found = _ls_period(ti, fi, 0.25, 20.0, 365.0)
        if label == "pulsating":
            assert found == pytest.approx(period, rel=0.01)
        else:
            # Two eclipses per orbit: the periodogram peaks at P or P/2.
            assert min(abs(found / period - 1), abs(found / period - 0.5)) < 0.01


def test_light_curves_transit_periods_recovered_by_bls(rng):
    timeseries = pytest.importorskip("astropy.timeseries")
    # Space-telescope cadence (regular, 30 min over 60 d): a ground cadence
    # can miss every transit of a near-integer-day period, which no method
    # recovers.
    t, f, y, p = make_light_curves(
        4,
        classes=("transit",),
        n_points=2880,
        duration=60,
        irregular=False,
        noise=0.002,
        period_range=(1, 5),
        return_params=True,
        random_state=_seed(rng),
    )
    periods = np.exp(np.linspace(np.log(0.9), np.log(5.5), 8000))
    for ti, fi, period in zip(t, f, p["period"]):
        result = timeseries.BoxLeastSquares(ti, fi).power(periods, [0.05, 0.1, 0.2])
        assert periods[np.argmax(result.power)] == pytest.approx(period, rel=0.01)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"classes": ("pulsating", "quasar")}, ValueError, "non-empty subset"),
        ({"classes": ()}, ValueError, "non-empty subset"),
        ({"classes": "transit"}, TypeError, "sequence of class names"),
        ({"period_range": (0, 3)}, ValueError, "period_range must be positive"),
        ({"noise": -1}, ValueError, "noise must be a finite number"),
        ({"n_points": 0}, ValueError, "n_points must be a positive int"),
    ],
)
def test_light_curves_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        make_light_curves(4, **kwargs)
