"""sciamba.ssm.hippo / nplr / s4d_init: closed forms and the NPLR reconstruction."""

import numpy as np
import pytest

from sciamba.ssm import hippo, nplr, s4d_init


def _legs_loop(N):
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        B[n] = np.sqrt(2 * n + 1)
        for k in range(N):
            if n > k:
                A[n, k] = -np.sqrt((2 * n + 1) * (2 * k + 1))
            elif n == k:
                A[n, k] = -(n + 1)
    return A, B


@pytest.mark.parametrize("N", [1, 5, 16])
def test_legs_closed_form_and_spectrum(N):
    A, B = hippo("legs", N)
    A_ref, B_ref = _legs_loop(N)
    np.testing.assert_allclose(A, A_ref, rtol=1e-15)
    np.testing.assert_allclose(B[:, 0], B_ref, rtol=1e-15)
    # Lower triangular, so the eigenvalues are the diagonal -1..-N exactly.
    np.testing.assert_array_equal(np.diag(A), -np.arange(1, N + 1))
    assert np.all(np.triu(A, 1) == 0)


def test_legt_lagt_fourier_closed_forms():
    N = 6
    A, B = hippo("legt", N)
    for n in range(N):
        for k in range(N):
            s = 1.0 if n >= k else (-1.0) ** (n - k)
            assert A[n, k] == pytest.approx(-0.5 * np.sqrt((2 * n + 1) * (2 * k + 1)) * s, rel=1e-15)
    np.testing.assert_allclose(B[:, 0], 0.5 * np.sqrt(2 * np.arange(N) + 1))
    A, B = hippo("lagt", N)
    np.testing.assert_array_equal(A, np.where(np.eye(N) == 1, -0.5, np.tril(-np.ones((N, N)))))
    np.testing.assert_array_equal(B, np.ones((N, 1)))
    A, B = hippo("fout", N)  # alias
    b = np.array([1, 0, np.sqrt(2), 0, np.sqrt(2), 0])
    R = np.zeros((N, N))
    R[2, 3], R[3, 2], R[4, 5], R[5, 4] = -np.pi, np.pi, -2 * np.pi, 2 * np.pi
    np.testing.assert_allclose(A, R - np.outer(b, b), rtol=1e-15)
    np.testing.assert_allclose(B[:, 0], b)


@pytest.mark.parametrize("kind,rank,re", [("legs", 1, -0.5), ("legt", 2, 0.0), ("lagt", 1, 0.0), ("fourier", 1, 0.0)])
@pytest.mark.parametrize("N", [4, 9, 64])
def test_nplr_reconstructs_A(kind, rank, re, N):
    N += kind == "fourier" and N % 2  # fourier pairs cosine/sine states: even N only
    Lam, P, B, V = nplr(kind, N)
    A, B_ref = hippo(kind, N)
    assert Lam.shape == (N,) and P.shape == (N, rank) and V.shape == (N, N)
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N), atol=1e-12)  # unitary
    rec = V @ np.diag(Lam) @ V.conj().T - P @ P.T
    assert np.max(np.abs(rec - A)) < 1e-10 * max(1.0, np.max(np.abs(A)))
    np.testing.assert_allclose(Lam.real, re, atol=1e-12)
    np.testing.assert_array_equal(B, B_ref[:, 0])
    assert np.all(np.diff(Lam.imag) >= 0)
    # Conjugate symmetry: the imaginary parts pair up as +-omega.
    np.testing.assert_allclose(np.sort(Lam.imag), np.sort(-Lam.imag), atol=1e-9 * N)


def test_direct_diagonalization_of_legs_is_ill_conditioned():
    # The trap documented in hippo(): eig(A) has a hopeless eigenvector basis; nplr's is unitary.
    A, _ = hippo("legs", 32)
    _, W = np.linalg.eig(A)
    assert np.linalg.cond(W) > 1e15
    assert np.linalg.cond(nplr("legs", 32)[3]) < 1 + 1e-10


def test_s4d_init_formulas():
    N = 7
    n = np.arange(N)
    A, B = s4d_init("real", N)
    assert A.dtype == np.complex128 and A.shape == (N,) and B.shape == (N,)
    np.testing.assert_array_equal(A, -(n + 1.0))
    np.testing.assert_array_equal(B, np.ones(N))
    A, _ = s4d_init("lin", N)
    np.testing.assert_allclose(A, -0.5 + 1j * np.pi * n)
    A, _ = s4d_init("inv", N)
    M = 2 * N
    np.testing.assert_allclose(A, -0.5 + 1j * M / np.pi * (M / (2 * n + 1) - 1))
    assert np.all(A.imag >= 0)  # the positive half of each conjugate pair
    # S4D-Real equals the LegS spectrum (S4D paper's motivation).
    np.testing.assert_allclose(np.sort(s4d_init("real", 9)[0].real), np.sort(np.diag(hippo("legs", 9)[0])))


def test_bad_kinds_and_sizes():
    with pytest.raises(ValueError, match="unknown HiPPO kind 'legx'"):
        hippo("legx", 4)
    with pytest.raises(ValueError, match="unknown HiPPO kind"):
        nplr("random", 4)
    with pytest.raises(ValueError, match="unknown S4D init kind 'diag'"):
        s4d_init("diag", 4)
    with pytest.raises(TypeError, match="kind must be a string"):
        hippo(3, 4)
    with pytest.raises(ValueError, match="N must be a positive integer"):
        hippo("legs", 0)
    with pytest.raises(TypeError, match="N must be a positive integer"):
        s4d_init("lin", 2.5)
    with pytest.raises(ValueError, match="N must be even"):
        hippo("fourier", 5)
