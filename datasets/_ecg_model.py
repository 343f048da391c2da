"""Synthetic ECG from the dynamical model of McSharry et al. (2003)."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps
from scipy.interpolate import PchipInterpolator

from ._beats import segment_beats
from ._random import check_positive, check_random_state

__all__ = ["make_ecg"]

# Wave parameters of McSharry et al. (2003), Table 1: P, Q, R, S, T.
_THETA = np.deg2rad([-70.0, -15.0, 0.0, 15.0, 100.0])  # angles on the limit cycle
_A = np.array([1.2, -5.0, 30.0, -7.5, 0.75])  # amplitudes
_B = np.array([0.25, 0.1, 0.1, 0.1, 0.4])  # widths (rad)
# Premature ventricular contraction: no P wave, a wide QRS with a taller R,
# and a broad discordant (inverted) T wave. A wave's z excursion is about
# a*b**2/omega, so the amplitudes are set through a*b**2 relative to the
# normal beat (R about 1.6x, T inverted at about half the normal size; the
# slow phase of the compensatory pause widens and deepens it).
_THETA_PVC = np.deg2rad([-70.0, -15.0, 0.0, 30.0, 120.0])
_B_PVC = np.array([0.25, 0.25, 0.22, 0.2, 0.45])
_A_PVC = np.array([0.0, 0.0, 10.0, -1.5, -0.35])

_OVERSAMPLE_HZ = 1440.0  # internal rate: the R wave (b = 0.1 rad) gets >= 8 samples per sigma
_F_LF, _F_HF, _C_LF, _C_HF = 0.1, 0.25, 0.01, 0.01  # Mayer waves and RSA (Hz)
# Baseline wander z0 = A sin(2 pi f_HF t): A = 0.005 in model units, which
# becomes about 0.15 mV after the scaling to [-0.4, 1.2] mV (as in ECGSYN).
_RESP_AMPLITUDE = 0.005
# z relaxes to z0 with time constant 1 s: simulate this long before t = 0 so
# the output starts on the periodic solution (transient below e^-5).
_BURN_IN_S = 5.0


def _rr_process(
    rng: np.random.Generator, n: int, rr_mean: float, rr_std: float, lf_hf_ratio: float
) -> np.ndarray:
    """RR intervals sampled at 1 Hz with the bimodal LF/HF spectrum of McSharry et al.

    The power spectrum is a sum of two Gaussians (Mayer waves at 0.1 Hz, RSA at
    0.25 Hz, LF/HF power ratio ``lf_hf_ratio``); random phases and an inverse
    FFT give a series, scaled to mean ``rr_mean`` and std ``rr_std``.
    """
    freqs = np.fft.rfftfreq(n, d=1.0)
    power = lf_hf_ratio * np.exp(-((freqs - _F_LF) ** 2) / (2 * _C_LF**2)) / np.sqrt(
        2 * np.pi * _C_LF**2
    ) + np.exp(-((freqs - _F_HF) ** 2) / (2 * _C_HF**2)) / np.sqrt(2 * np.pi * _C_HF**2)
    phases = rng.uniform(0, 2 * np.pi, size=freqs.size)
    series = np.fft.irfft(np.sqrt(power) * np.exp(1j * phases), n=n)
    std = series.std()
    series = (series - series.mean()) / std if std > 0 else np.zeros(n)
    return rr_mean + rr_std * series


def _beat_schedule(
    rng: np.random.Generator,
    duration: float,
    heart_rate: float,
    heart_rate_std: float,
    lf_hf_ratio: float,
    pvc_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times (s) covering ``[-burn-in, duration]`` and a PVC flag per beat."""
    rr_mean = 60.0 / heart_rate
    rr_std = 60.0 * heart_rate_std / heart_rate**2  # delta RR = 60 delta HR / HR^2
    n = int(2 ** np.ceil(np.log2(duration + _BURN_IN_S + 4 * rr_mean + 16)))
    rr = np.clip(_rr_process(rng, n, rr_mean, rr_std, lf_hf_ratio), 0.3 * rr_mean, 3 * rr_mean)
    # A random phase at the start, so that t = 0 is not always an R peak.
    times = [-_BURN_IN_S - (1 + rng.uniform()) * rr_mean]
    while times[-1] < duration + 2 * rr_mean:
        times.append(times[-1] + np.interp(times[-1] + _BURN_IN_S + 2 * rr_mean, np.arange(n), rr))
    times = np.asarray(times)
    pvc = np.zeros(times.size, dtype=bool)
    if pvc_fraction > 0:
        for k in range(1, times.size - 1):
            if not pvc[k - 1] and rng.uniform() < pvc_fraction:
                # Premature by 25-40 % of the interval, then a full compensatory
                # pause: the next normal beat keeps its time.
                pvc[k] = True
                times[k] -= rng.uniform(0.25, 0.40) * (times[k] - times[k - 1])
    return times, pvc


def _wave_forcing(phase: np.ndarray, beat: np.ndarray, pvc: np.ndarray, hr: float) -> np.ndarray:
    """The Gaussian wave terms -sum_i a_i dtheta_i exp(-dtheta_i^2 / 2 b_i^2) of dz/dt."""
    # Heart-rate scaling of widths and angles (ECGSYN, McSharry et al. 2003).
    f1 = np.sqrt(hr / 60.0)
    f2 = np.sqrt(f1)
    scale_theta = np.array([f2, f1, 1.0, f1, 1.0])
    theta = np.where(pvc[beat, None], _THETA_PVC, _THETA * scale_theta)  # (T 5)
    a = np.where(pvc[beat, None], _A_PVC, _A)  # (T 5)
    b = np.where(pvc[beat, None], _B_PVC, _B) * f1  # (T 5)
    dtheta = np.mod(phase[:, None] - theta + np.pi, 2 * np.pi) - np.pi  # (T 5)
    return -np.sum(a * dtheta * np.exp(-(dtheta**2) / (2 * b**2)), axis=1)  # (T,)


def _simulate_one(
    rng: np.random.Generator,
    n_times: int,
    fs: float,
    heart_rate: float,
    heart_rate_std: float,
    lf_hf_ratio: float,
    pvc_fraction: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    duration = n_times / fs
    r_times, pvc = _beat_schedule(
        rng, duration, heart_rate, heart_rate_std, lf_hf_ratio, pvc_fraction
    )
    up = int(np.ceil(_OVERSAMPLE_HZ / fs))
    h = 1.0 / (fs * up)
    n_burn = int(np.ceil(_BURN_IN_S / h))
    t = (np.arange(n_times * up + n_burn) - n_burn) * h  # (T,)
    # On the limit cycle (x, y) = (cos theta, sin theta) the radius term
    # alpha = 1 - r vanishes and theta advances at omega(t): theta = 2 pi k at
    # the k-th R peak. A piecewise-constant omega (ECGSYN) jumps at R peaks;
    # a premature beat then leaves a spurious z offset (a b^2 (1/w+ - 1/w-)),
    # so theta is the monotone C1 cubic (PCHIP) through the R peaks instead.
    phase_of = PchipInterpolator(r_times, 2 * np.pi * np.arange(r_times.size))
    unwrapped = phase_of(t)  # (T,)
    beat = np.rint(unwrapped / (2 * np.pi)).astype(np.int64)  # (T,) beat owning this phase
    forcing = _wave_forcing(unwrapped, beat, pvc, heart_rate)
    # dz/dt = forcing - (z - z0), z0 = A sin(2 pi f_HF t): the first-order
    # system 1/(s + 1), discretised exactly for piecewise-linear input (FOH).
    num, den, _ = sps.cont2discrete(([1.0], [1.0, 1.0]), h, method="foh")
    z0 = _RESP_AMPLITUDE * np.sin(2 * np.pi * _F_HF * t)
    z = sps.lfilter(np.ravel(num), den, forcing + z0)[n_burn::up]
    # McSharry et al. scale z to the range [-0.4, 1.2] mV.
    z = (z - z.min()) * (1.6 / (z.max() - z.min())) - 0.4
    inside = (r_times >= 0) & (r_times < duration)
    r_samples = np.rint(r_times[inside] * fs).astype(np.int64)
    keep = r_samples < n_times
    labels = np.where(pvc[inside], "V", "N")
    return z, r_samples[keep], labels[keep]


def make_ecg(
    n_samples: int = 1,
    *,
    duration: float = 10.0,
    fs: float = 360.0,
    heart_rate: float = 60.0,
    heart_rate_std: float = 1.0,
    lf_hf_ratio: float = 0.5,
    noise: float = 0.0,
    pvc_fraction: float = 0.0,
    beats: bool = False,
    pre: float = 0.25,
    post: float = 0.45,
    return_annotations: bool = False,
    random_state=None,
):
    r"""Synthetic ECG from the dynamical model of McSharry et al. (2003).

    A trajectory on the unit limit cycle of the :math:`(x, y)` plane sets the
    cardiac phase :math:`\theta`; the ECG :math:`z` is pushed up or down by
    Gaussian events (the P, Q, R, S and T waves) as :math:`\theta` passes
    their angles :math:`\theta_i`:

    .. math::

        \dot x = \alpha x - \omega y, \quad
        \dot y = \alpha y + \omega x, \quad
        \dot z = -\sum_{i \in \{P,Q,R,S,T\}} a_i \Delta\theta_i
                 \exp\left(-\frac{\Delta\theta_i^2}{2 b_i^2}\right) - (z - z_0),

    with :math:`\alpha = 1 - \sqrt{x^2 + y^2}`,
    :math:`\Delta\theta_i = (\theta - \theta_i) \bmod 2\pi`,
    :math:`\omega = 2\pi / RR` and the baseline wander
    :math:`z_0 = 0.15 \sin(2\pi f_2 t)`, :math:`f_2 = 0.25` Hz. The RR
    intervals follow a bimodal spectrum (Mayer waves at 0.1 Hz, respiratory
    sinus arrhythmia at 0.25 Hz). Parameters are those of the paper's Table 1,
    with the heart-rate scaling of its ECGSYN implementation; the output is
    scaled to [-0.4, 1.2] mV as in the paper.

    Parameters
    ----------
    n_samples : int, default 1
        Number of independent recordings.
    duration : float, default 10.0
        Length of each recording in seconds.
    fs : float, default 360.0
        Sampling rate in Hz.
    heart_rate : float, default 60.0
        Mean heart rate in beats per minute (20-250).
    heart_rate_std : float, default 1.0
        Standard deviation of the heart rate (bpm), the heart-rate variability.
    lf_hf_ratio : float, default 0.5
        LF/HF power ratio of the RR spectrum.
    noise : float, default 0.0
        Standard deviation (mV) of additive white Gaussian measurement noise.
    pvc_fraction : float, default 0.0
        Probability that a beat is a premature ventricular contraction (label
        ``"V"``; the others are ``"N"``): it comes 25-40 % early, is followed
        by a full compensatory pause, has no P wave, a wide QRS and an
        inverted T wave. Two PVCs are never adjacent.
    beats : bool, default False
        Return beat windows and labels ``(X, y)`` for classification instead
        of the recordings, cut exactly as
        :func:`load_mitdb_record100` ``(beats=True)`` does.
    pre, post : float, default 0.25, 0.45
        Beat window in seconds before and after the R peak (``beats=True``).
    return_annotations : bool, default False
        Also return the R-peak sample indices and beat labels of each
        recording (ignored with ``beats=True``).
    random_state : None, int or numpy.random.Generator
        Seed for reproducible output.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, round(duration * fs))
        The recordings in mV, time last. With ``beats=True``: shape
        ``(n_beats, 1, n_pre + n_post)``, all recordings' beats whose window
        fits, in order.
    y : ndarray of str, shape (n_beats,)
        Only with ``beats=True``: ``"N"`` or ``"V"``.
    r_peaks, labels : list of ndarray
        Only with ``return_annotations=True``: per recording, the R-peak
        sample indices (int64) and their labels.

    Notes
    -----
    The trajectory starts on the limit cycle, where :math:`\alpha = 0` and
    :math:`\theta` advances at exactly :math:`\omega`. :math:`\theta` is
    the monotone cubic (PCHIP) interpolant of :math:`2\pi k` at the R-peak
    times, so :math:`\theta = 0` at each R peak as in the paper and
    :math:`\omega` is continuous (a piecewise-constant :math:`\omega`, as
    in ECGSYN, jumps at the R peak of a premature beat and leaves a spurious
    offset in :math:`z`). The :math:`z` equation is a first-order linear system
    driven by the wave terms, integrated at >= 1440 Hz with the exact
    first-order-hold discretisation (:func:`scipy.signal.cont2discrete`) and
    :func:`scipy.signal.lfilter`, then decimated to ``fs``.

    References
    ----------
    .. [1] McSharry PE, Clifford GD, Tarassenko L, Smith LA. A dynamical model
       for generating synthetic electrocardiogram signals. IEEE Trans Biomed
       Eng 50(3):289-294 (2003), doi:10.1109/TBME.2003.808805.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import find_peaks
    >>> from sciamba.datasets import make_ecg
    >>> X = make_ecg(2, duration=30, heart_rate=72, random_state=0)
    >>> X.shape
    (2, 10800)
    >>> peaks, _ = find_peaks(X[0], height=0.6, distance=0.3 * 360)
    >>> bool(abs(60 / np.mean(np.diff(peaks) / 360) - 72) < 2)
    True
    >>> Xb, y = make_ecg(4, duration=20, pvc_fraction=0.2, beats=True, random_state=0)
    >>> Xb.shape[1:], sorted(set(y.tolist()))
    ((1, 252), ['N', 'V'])
    """
    check_positive("n_samples", n_samples, integer=True)
    check_positive("duration", duration)
    check_positive("fs", fs)
    check_positive("heart_rate", heart_rate)
    if not 20 <= heart_rate <= 250:
        raise ValueError(f"heart_rate must be within 20-250 bpm, got {heart_rate}")
    for name, value in (
        ("heart_rate_std", heart_rate_std),
        ("noise", noise),
        ("lf_hf_ratio", lf_hf_ratio),
    ):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not 0 <= pvc_fraction < 0.5:
        raise ValueError(f"pvc_fraction must be in [0, 0.5), got {pvc_fraction!r}")
    n_times = int(round(duration * fs))
    if n_times < 2:
        raise ValueError(f"duration * fs must give at least 2 samples, got {n_times}")
    rng = check_random_state(random_state)
    X = np.empty((n_samples, n_times))
    r_peaks, labels = [], []
    for i in range(n_samples):
        X[i], r, lab = _simulate_one(
            rng, n_times, fs, heart_rate, heart_rate_std, lf_hf_ratio, pvc_fraction
        )
        r_peaks.append(r)
        labels.append(lab)
    if noise > 0:
        X += rng.normal(0.0, noise, size=X.shape)
    if beats:
        parts = [
            segment_beats(X[i][None], r_peaks[i], labels[i], fs, pre, post)
            for i in range(n_samples)
        ]
        Xb = np.concatenate([p[0] for p in parts], axis=0)
        yb = np.concatenate([p[1] for p in parts]).astype("<U1")
        return Xb, yb
    if return_annotations:
        return X, r_peaks, labels
    return X
