"""LTISSM, from_lti and to_lti against scipy.signal (dlsim, dimpulse, cont2discrete, expm)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciamba.ssm import LTISSM, from_lti, to_lti
from sciamba.ssm._testing import random_stable_system, single_thread_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread avoids synchronization stalls on a busy machine."""
    yield from single_thread_torch()

F64 = torch.float64


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / max(1e-300, np.max(np.abs(b)))


def _dlsim(dsys, u):
    """scipy's dlsim per batch element; u (batch, m, L) -> (batch, p, L)."""
    out = []
    for ub in u:
        y = scipy.signal.dlsim(dsys, ub.T)[1]  # (L, p); TF systems return no state
        out.append(y.T)
    return np.stack(out)


def _tf(A, B, C, D, s):
    return C @ np.linalg.solve(s * np.eye(A.shape[0]) - A, B) + D


@pytest.mark.parametrize("method", ["zoh", "foh", "bilinear", "euler", "backward_diff", "impulse"])
@pytest.mark.parametrize("nmp", [(1, 1, 1), (4, 2, 3), (7, 3, 2)])
def test_continuous_layer_matches_dlsim_both_modes(rng, method, nmp):
    n, m, p = nmp
    A, B, C, D = random_stable_system(rng, n, m, p)
    if method == "impulse":
        D = np.zeros_like(D)
    dt, L = float(rng.uniform(0.02, 0.5)), int(rng.integers(30, 90))
    u = rng.normal(size=(2, m, L))
    ref = _dlsim(scipy.signal.cont2discrete((A, B, C, D), dt, method=method), u)
    ys = {}
    for mode in ("scan", "fft"):
        layer = LTISSM(A, B, C, D, dt=dt, method=method, mode=mode, dtype=F64)
        ys[mode] = layer(torch.tensor(u)).numpy()
        assert ys[mode].shape == (2, p, L)
        assert _rel(ys[mode], ref) < 1e-8
    assert np.max(np.abs(ys["scan"] - ys["fft"])) <= 1e-10 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("nmp", [(1, 1, 1), (5, 2, 3)])
def test_kernel_equals_dimpulse(rng, nmp):
    n, m, p = nmp
    A, B, C, D = random_stable_system(rng, n, m, p)
    dt, L = 0.1, 37
    dsys = scipy.signal.cont2discrete((A, B, C, D), dt)
    K = LTISSM(A, B, C, D, dt=dt, dtype=F64).kernel(L).numpy()
    assert K.shape == (p, m, L)
    _, h = scipy.signal.dimpulse(dsys, n=L)
    for i in range(m):
        assert _rel(K[:, i, :], h[i].T) < 1e-10


def _forms(rng):
    """One random stable SISO system in every scipy form, plus the reference state space."""
    A, B, C, D = random_stable_system(rng, 3, 1, 1)
    ss = scipy.signal.lti(A, B, C, D)
    num, den = scipy.signal.ss2tf(A, B, C, D)
    z, pz, k = scipy.signal.ss2zpk(A, B, C, D)
    return ss, {"ss": ss, "tf": scipy.signal.lti(num, den), "zpk": scipy.signal.lti(z, pz, k),
                "tuple2": (num[0], den), "tuple3": (z, pz, k), "tuple4": (A, B, C, D)}


def test_from_lti_every_form_matches_dlsim(rng):
    ss, forms = _forms(rng)
    dt, L = 0.07, 60
    u = rng.normal(size=(1, 1, L))
    ref = _dlsim(scipy.signal.cont2discrete((ss.A, ss.B, ss.C, ss.D), dt), u)
    for name, system in forms.items():
        layer = from_lti(system, dt=dt, dtype=F64)
        assert layer.is_continuous
        assert _rel(layer(torch.tensor(u)).numpy(), ref) < 1e-8, name


def test_from_dlti_keeps_its_dt_and_matches_dlsim(rng):
    A, B, C, D = random_stable_system(rng, 4, 2, 3)
    Ad, Bd, Cd, Dd, _ = scipy.signal.cont2discrete((A, B, C, D), 0.2)
    u = rng.normal(size=(3, 2, 45))
    for dsys in (scipy.signal.dlti(Ad, Bd, Cd, Dd, dt=0.2), scipy.signal.dlti(Ad, Bd, Cd, Dd)):
        for mode in ("scan", "fft"):
            layer = from_lti(dsys, mode=mode, dtype=F64)
            assert not layer.is_continuous
            assert _rel(layer(torch.tensor(u)).numpy(), _dlsim(dsys, u)) < 1e-8
    assert from_lti(scipy.signal.dlti(Ad, Bd, Cd, Dd, dt=0.2), dt=0.2).dt == 0.2
    # SIMO discrete transfer function, in z.
    tf = scipy.signal.dlti([[0.0, 1.0, 0.5], [1.0, -0.3, 0.0]], [1.0, -0.9, 0.2], dt=0.5)
    layer = from_lti(tf, dtype=F64)
    u1 = rng.normal(size=(2, 1, 30))
    assert _rel(layer(torch.tensor(u1)).numpy(), _dlsim(tf, u1)) < 1e-8
    assert to_lti(layer).dt == 0.5


def test_to_lti_round_trip(rng):
    A, B, C, D = random_stable_system(rng, 5, 2, 3)
    layer = from_lti(scipy.signal.lti(A, B, C, D), dt=0.1, dtype=F64)
    back = to_lti(layer)
    assert isinstance(back, scipy.signal.StateSpace) and back.dt is None
    np.testing.assert_allclose(back.A, A, rtol=1e-15)
    for s in (0.3j, 1.0 + 2j, 5j):
        np.testing.assert_allclose(_tf(back.A, back.B, back.C, back.D, s), _tf(A, B, C, D, s), rtol=1e-12)
    dback = to_lti(layer, discrete=True)
    assert dback.dt == 0.1
    ref = scipy.signal.cont2discrete((A, B, C, D), 0.1)[:4]
    for o, r in zip((dback.A, dback.B, dback.C, dback.D), ref, strict=True):
        assert _rel(o, r) < 1e-10
    # And back again: the discrete system's layer reproduces the continuous layer's output.
    u = torch.tensor(rng.normal(size=(1, 2, 25)))
    assert _rel(from_lti(dback, dtype=F64)(u).numpy(), layer(u).numpy()) < 1e-10


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 3), p=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       method=st.sampled_from(["zoh", "foh", "bilinear", "backward_diff"]))
def test_hypothesis_random_systems(n, m, p, seed, method):
    rng = np.random.default_rng(seed)
    A, B, C, D = random_stable_system(rng, n, m, p)
    dt = float(rng.uniform(0.01, 1.0))
    u = rng.normal(size=(1, m, 33))
    layer = LTISSM(A, B, C, D, dt=dt, method=method, mode="fft" if seed % 2 else "scan", dtype=F64)
    ref = _dlsim(scipy.signal.cont2discrete((A, B, C, D), dt, method=method), u)
    assert _rel(layer(torch.tensor(u)).numpy(), ref) < 1e-8


def test_float32(rng):
    A, B, C, D = random_stable_system(rng, 4, 2, 2)
    u = rng.normal(size=(2, 2, 64))
    y64 = LTISSM(A, B, C, D, dt=0.1, dtype=F64)(torch.tensor(u)).numpy()
    for mode in ("scan", "fft"):
        layer = LTISSM(A, B, C, D, dt=0.1, mode=mode, dtype=torch.float32)
        y = layer(torch.tensor(u, dtype=torch.float32))
        assert y.dtype == torch.float32
        assert _rel(y.numpy(), y64) < 1e-4


# ---- irregular sampling ------------------------------------------------------------


def _expm_loop(A, B, C, D, u, gaps):
    """x[k+1] = e^{A g_k} x[k] + int_0^{g_k} e^{At} dt B u[k], one scipy expm per step."""
    n, m = B.shape
    x = np.zeros(n)
    y = []
    for k in range(u.shape[-1]):
        y.append(C @ x + D @ u[:, k])
        M = np.zeros((n + m, n + m))
        M[:n, :n], M[:n, n:] = A, B
        E = scipy.linalg.expm(M * gaps[k])
        x = E[:n, :n] @ x + E[:n, n:] @ u[:, k]
    return np.array(y).T


def test_irregular_steps_match_per_step_expm(rng):
    A, B, C, D = random_stable_system(rng, 3, 2, 2)
    L = 23
    layer = LTISSM(A, B, C, D, dt=0.1, dtype=F64)
    u = rng.normal(size=(3, 2, L))
    gaps = rng.uniform(0.01, 0.6, size=L)  # shared by the batch
    y = layer(torch.tensor(u), dt=torch.tensor(gaps)).numpy()
    gaps_b = rng.uniform(0.01, 0.6, size=(3, L))  # one grid per batch element
    y_b = layer(torch.tensor(u), dt=gaps_b).numpy()
    for b in range(3):
        assert _rel(y[b], _expm_loop(A, B, C, D, u[b], gaps)) < 1e-10
        assert _rel(y_b[b], _expm_loop(A, B, C, D, u[b], gaps_b[b])) < 1e-10


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_equal_gaps_equal_regular_layer(rng, method):
    A, B, C, D = random_stable_system(rng, 4, 1, 2)
    layer = LTISSM(A, B, C, D, dt=0.13, method=method, dtype=F64)
    u = torch.tensor(rng.normal(size=(2, 1, 40)))
    assert _rel(layer(u, dt=torch.full((40,), 0.13, dtype=F64)).numpy(), layer(u).numpy()) < 1e-12


# ---- gradients ---------------------------------------------------------------------


@pytest.mark.parametrize("case", ["scan", "fft", "irregular", "stable"])
def test_gradcheck_through_layer(rng, case):
    A, B, C, D = random_stable_system(rng, 2, 2, 1)  # small: gradcheck differentiates every entry
    layer = LTISSM(A, B, C, D, dt=0.2, trainable=True, mode="fft" if case == "fft" else "scan",
                   stable=case == "stable", dtype=F64)
    names = [k for k, _ in layer.named_parameters()]
    assert "log_dt" in names
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters())
    u = torch.tensor(rng.normal(size=(1, 2, 7)), requires_grad=True)
    gaps = torch.tensor(rng.uniform(0.05, 0.4, size=7), requires_grad=True)

    def f(u, gaps, *ps):
        out = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (u,),
                                         {"dt": gaps} if case == "irregular" else {})
        return out

    assert torch.autograd.gradcheck(f, (u, gaps) + params)


def test_stable_parameterization(rng):
    A, B, C, D = random_stable_system(rng, 5, 1, 1)
    layer = LTISSM(A, B, C, D, dt=0.1, trainable=True, stable=True, dtype=F64)
    A2, B2, C2, D2 = (t.detach().numpy() for t in layer.continuous_matrices())
    for s in (0.5j, 2 + 1j):  # same transfer function after the change of coordinates
        np.testing.assert_allclose(_tf(A2, B2, C2, D2, s), _tf(A, B, C, D, s), rtol=1e-9)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.tensor(rng.normal(scale=1.0, size=p.shape)))
    assert np.max(np.linalg.eigvals(to_lti(layer).A).real) < 0


def test_identifies_damped_oscillator_from_noisy_data(rng):
    """Gradient descent on noisy input/output data recovers the poles of a known oscillator."""
    w0, zeta, dt, L = 2.0, 0.15, 0.05, 600
    true = scipy.signal.lti([[0.0, 1.0], [-w0**2, -2 * zeta * w0]], [[0.0], [1.0]], [[1.0, 0.0]], [[0.0]])
    u = rng.normal(size=(4, 1, L))
    y = _dlsim(true.to_discrete(dt), u)
    y_noisy = y + 0.1 * np.std(y) * rng.normal(size=y.shape)  # 10% measurement noise
    # Start from a clearly different, stable oscillator (w0 = 1.4, zeta = 0.4) with the wrong gain.
    init = scipy.signal.lti([[0.0, 1.0], [-1.96, -1.12]], [[0.0], [0.5]], [[1.0, 0.0]], [[0.0]])
    layer = from_lti(init, dt=dt, trainable=True, stable=True, dtype=F64)
    layer.log_dt.requires_grad_(False)  # the sampling interval is known
    ut, yt = torch.tensor(u), torch.tensor(y_noisy)
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.mean((layer(ut) - yt) ** 2)
        loss.backward()
        return loss

    opt.step(closure)
    poles = np.sort_complex(np.linalg.eigvals(to_lti(layer).A))
    true_poles = np.sort_complex(np.linalg.eigvals(true.A))
    assert np.all(np.abs(poles - true_poles) <= 0.02 * np.abs(true_poles)), (poles, true_poles)
