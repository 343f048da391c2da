"""The S4D building blocks (s4d_init, discretize_diagonal, causal_fft_conv) against LTISSM and closed forms.

A complex diagonal S4D system with output 2 Re(C x) is a real system of 2x2 rotation-decay
blocks; its S4-convention kernel K_l = 2 Re sum_n C_n B_n lambda_n^l must equal the impulse
response of that real system one sample later (S4's state already contains u_k), and the
Tustin transform must satisfy H_d(z) = H_c(2/dt (z-1)/(z+1)) exactly.
"""

import numpy as np
import pytest
import torch

from sciamba.ssm import LTISSM, causal_fft_conv, discretize, discretize_diagonal, s4d_init
from sciamba.ssm._testing import random_stable_system, single_thread_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread avoids synchronization stalls on a busy machine."""
    yield from single_thread_torch()


def _realify(lam, B, C):
    """Real (A, B, C) of x' = diag(lam) x + B u, y = 2 Re(C x), in [Re x_n, Im x_n] coordinates."""
    N = lam.shape[0]
    A = np.zeros((2 * N, 2 * N))
    for n, z in enumerate(lam):
        A[2 * n : 2 * n + 2, 2 * n : 2 * n + 2] = [[z.real, -z.imag], [z.imag, z.real]]
    Br = np.stack([B.real, B.imag], axis=1).reshape(2 * N, 1)
    Cr = 2 * np.stack([C.real, -C.imag], axis=1).reshape(1, 2 * N)
    return A, Br, Cr


@pytest.mark.parametrize("kind", ["real", "lin", "inv"])
def test_s4d_kernel_is_the_shifted_impulse_response(rng, kind):
    N, L, dt = 5, 40, float(rng.uniform(0.005, 0.05))
    lam, B = s4d_init(kind, N)
    C = rng.normal(size=N) + 1j * rng.normal(size=N)
    Ld, Bd = discretize_diagonal(torch.tensor(lam), torch.tensor(B), dt)  # (N,), (N,)
    powers = Ld[:, None] ** torch.arange(L, dtype=torch.float64)  # (N L)
    K = 2 * torch.einsum("n,nl->l", torch.tensor(C) * Bd, powers).real  # (L,)

    A_r, B_r, C_r = _realify(lam, B, C)
    layer = LTISSM(A_r, B_r, C_r, np.zeros((1, 1)), dt=dt, dtype=torch.float64)
    h = layer.kernel(L + 1)[0, 0]  # scipy timing: h[0] = D, h[l] = C Ad^(l-1) Bd
    np.testing.assert_allclose(K.numpy(), h[1:].numpy(), rtol=1e-9, atol=1e-12 * h.abs().max().item())

    u = torch.tensor(rng.normal(size=(2, 1, L)))
    y_s4 = causal_fft_conv(u, K)  # (2 1 L): S4-convention output
    y = LTISSM(A_r, B_r, C_r, np.zeros((1, 1)), dt=dt, mode="fft", dtype=torch.float64)(
        torch.cat([u, torch.zeros(2, 1, 1, dtype=torch.float64)], dim=-1)
    )
    np.testing.assert_allclose(y_s4.numpy(), y[..., 1:].numpy(), rtol=1e-9, atol=1e-12)


def test_tustin_identity(rng):
    """bilinear: H_d(z) = H_c(s) at s = (2/dt)(z-1)/(z+1), for z anywhere off the poles."""
    A, B, C, D = random_stable_system(rng, 4, 2, 3)
    dt = float(rng.uniform(0.05, 1.0))
    Ad, Bd, Cd, Dd = discretize(A, B, C, D, dt, method="bilinear")
    for z in np.exp(1j * rng.uniform(0, np.pi, size=3)) * rng.uniform(0.5, 1.5, size=3):
        s = 2 / dt * (z - 1) / (z + 1)
        Hd = Cd @ np.linalg.solve(z * np.eye(4) - Ad, Bd) + Dd
        Hc = C @ np.linalg.solve(s * np.eye(4) - A, B) + D
        np.testing.assert_allclose(Hd, Hc, rtol=1e-10, atol=1e-12)


def test_zoh_poles_are_exponentials(rng):
    """ZOH maps each continuous pole s to exp(s dt), whatever the (non-diagonal) basis."""
    A, B, C, D = random_stable_system(rng, 6, 1, 1)
    dt = float(rng.uniform(0.05, 1.0))
    Ad = discretize(A, B, C, D, dt)[0]
    got, want = np.linalg.eigvals(Ad), np.exp(np.linalg.eigvals(A) * dt)
    dist = np.abs(got[:, None] - want[None, :])  # (6 6): a match for every pole, both ways
    assert dist.min(axis=0).max() < 1e-9 and dist.min(axis=1).max() < 1e-9
