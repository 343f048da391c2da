"""Damped harmonic oscillators simulated as ``scipy.signal`` state space systems."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps
from threadpoolctl import threadpool_limits

from ._random import check_positive, check_random_state, check_range

__all__ = ["make_damped_oscillators"]


def _oscillator(f0: float, zeta: float) -> sps.StateSpace:
    """Continuous system x'' + 2 zeta w0 x' + w0^2 x = w0^2 u, state (x, x')."""
    w0 = 2 * np.pi * f0
    A = np.array([[0.0, 1.0], [-(w0**2), -2 * zeta * w0]])
    B = np.array([[0.0], [w0**2]])
    C = np.array([[1.0, 0.0]])
    D = np.zeros((1, 1))
    return sps.StateSpace(A, B, C, D)


def _run(sys_d: sps.StateSpace, u: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """Output of the discrete system from state ``x0`` under input ``u``.

    Same result as :func:`scipy.signal.dlsim`, but through the transfer
    function and :func:`scipy.signal.lfilter` (dlsim loops over time in
    Python). The initial state enters as the past outputs it implies with
    zero past input, ``y[-j] = C A^{-j} x0``, turned into filter state by
    :func:`scipy.signal.lfiltic`.
    """
    num, a = sps.ss2tf(sys_d.A, sys_d.B, sys_d.C, sys_d.D)
    b = np.ravel(num)
    # ss2tf gets the leading coefficient (= D) as a difference of equal
    # polynomial coefficients; set it exactly.
    b[0] = sys_d.D.item()
    A_inv = np.linalg.inv(sys_d.A)
    past, x = [], x0
    for _ in range(len(a) - 1):
        x = A_inv @ x
        past.append((sys_d.C @ x).item())  # y[-1], y[-2], ...
    zi = sps.lfiltic(b, a, y=past, x=np.zeros(len(b) - 1))
    return sps.lfilter(b, a, u, zi=zi)[0]


def _simulate(rng, f0, zeta, fs, n_timesteps, drive):
    from scipy.linalg import solve_discrete_lyapunov

    sys_c = _oscillator(f0, zeta)
    sys_d = sys_c.to_discrete(1.0 / fs, method="zoh")
    if drive == "initial":
        phi = rng.uniform(0, 2 * np.pi)
        x0 = np.array([np.cos(phi), 2 * np.pi * f0 * np.sin(phi)])
        u = np.zeros(n_timesteps)
    else:
        P = solve_discrete_lyapunov(sys_d.A, sys_d.B @ sys_d.B.T)
        x0 = rng.multivariate_normal(np.zeros(2), P)
        u = rng.standard_normal(n_timesteps)
    return _run(sys_d, u, x0), sys_c


def make_damped_oscillators(
    n_samples: int = 100,
    n_timesteps: int = 500,
    *,
    fs: float = 100.0,
    freq_range: tuple[float, float] = (0.5, 5.0),
    damping_range: tuple[float, float] = (0.02, 0.3),
    drive: str = "noise",
    noise: float = 0.0,
    return_systems: bool = False,
    random_state=None,
):
    r"""Damped harmonic oscillators, simulated through ``scipy.signal`` systems.

    Each series is the displacement :math:`x(t)` of

    .. math::

        \ddot x + 2\zeta\omega_0 \dot x + \omega_0^2 x = \omega_0^2 u(t),
        \qquad \omega_0 = 2\pi f_0,

    written as a continuous :class:`scipy.signal.StateSpace` with state
    :math:`(x, \dot x)`, discretised at ``fs`` with zero-order hold
    (:meth:`~scipy.signal.StateSpace.to_discrete`) and run as its transfer
    function with :func:`scipy.signal.lfilter` (the same output as
    :func:`scipy.signal.dlsim`, without its Python loop over time). The
    natural frequency :math:`f_0` and the damping ratio :math:`\zeta` are
    drawn log-uniformly from their ranges.
    These are the systems that :mod:`sciamba.ssm` discretises: useful to
    check that a learned state space model recovers :math:`(f_0, \zeta)`.

    Parameters
    ----------
    n_samples : int, default 100
    n_timesteps : int, default 500
    fs : float, default 100.0
        Sampling rate in Hz.
    freq_range : (float, float), default (0.5, 5.0)
        Range of :math:`f_0` in Hz; must stay below ``fs / 2``.
    damping_range : (float, float), default (0.02, 0.3)
        Range of :math:`\zeta`, within (0, 1) (under-damped).
    drive : {"noise", "initial"}, default "noise"
        ``"noise"``: forced by white Gaussian noise :math:`u` (unit variance
        per sample), started from the stationary state distribution, so
        each series is a stationary AR(2)-like process. ``"initial"``: free
        decay (:math:`u = 0`) from a random initial state with
        :math:`x(0)^2 + (\dot x(0)/\omega_0)^2 = 1`.
    noise : float, default 0.0
        Standard deviation of white Gaussian measurement noise added to
        :math:`x`.
    return_systems : bool, default False
        Also return the list of continuous :class:`scipy.signal.StateSpace`
        systems.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_timesteps)
        Displacements, time last; sample ``k`` is at ``t = k / fs``.
    y : ndarray of float64, shape (n_samples, 2)
        Columns: natural frequency :math:`f_0` (Hz), damping ratio :math:`\zeta`.
    systems : list of scipy.signal.StateSpace
        Only with ``return_systems=True``.

    Notes
    -----
    With ``drive="initial"`` the solution is known in closed form,
    :math:`x(t) = e^{-\zeta\omega_0 t}\,[x_0 \cos\omega_d t +
    (v_0 + \zeta\omega_0 x_0)/\omega_d \, \sin\omega_d t]`,
    :math:`\omega_d = \omega_0\sqrt{1-\zeta^2}`, and zero-order hold is exact
    for zero input. With ``drive="noise"`` the stationary initial state is
    drawn from :math:`\mathcal N(0, P)`, :math:`P = A_d P A_d^\top +
    B_d B_d^\top` (:func:`scipy.linalg.solve_discrete_lyapunov`).

    Examples
    --------
    >>> from sciamba.datasets import make_damped_oscillators
    >>> X, y = make_damped_oscillators(3, 200, drive="initial", random_state=0)
    >>> X.shape, y.shape
    ((3, 200), (3, 2))
    >>> bool(abs(X[0, -1]) < abs(X[0]).max())
    True
    """
    check_positive("n_samples", n_samples, integer=True)
    check_positive("n_timesteps", n_timesteps, integer=True)
    check_positive("fs", fs)
    f_lo, f_hi = check_range("freq_range", freq_range)
    z_lo, z_hi = check_range("damping_range", damping_range)
    if f_lo <= 0 or f_hi >= fs / 2:
        raise ValueError(
            f"freq_range must lie inside (0, fs/2) = (0, {fs / 2}) to be resolved, got {freq_range}"
        )
    if z_lo <= 0 or z_hi >= 1:
        raise ValueError(
            f"damping_range must lie inside (0, 1) (under-damped), got {damping_range}"
        )
    if drive not in ("noise", "initial"):
        raise ValueError(f"drive must be 'noise' or 'initial', got {drive!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rng = check_random_state(random_state)
    f0 = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), n_samples))
    zeta = np.exp(rng.uniform(np.log(z_lo), np.log(z_hi), n_samples))
    X = np.empty((n_samples, n_timesteps))
    systems = []
    # Each series needs a 2x2 expm, Lyapunov solve and small matmuls; a
    # multithreaded BLAS spends far longer spinning up threads than computing
    # (x25 slower on a loaded 2-core machine), so run them single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(n_samples):
            X[i], system = _simulate(rng, f0[i], zeta[i], fs, n_timesteps, drive)
            systems.append(system)
    if noise > 0:
        X += rng.normal(0.0, noise, size=X.shape)
    y = np.column_stack([f0, zeta])
    if return_systems:
        return X, y, systems
    return X, y
