"""sciamba.ssm.discretize / discretize_diagonal against scipy.signal.cont2discrete."""

import numpy as np
import pytest
import scipy.signal
import torch

from sciamba.ssm import discretize, discretize_diagonal
from sciamba.ssm._testing import random_stable_system, single_thread_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread avoids synchronization stalls on a busy machine."""
    yield from single_thread_torch()

METHODS = ["zoh", "foh", "impulse", "bilinear", "tustin", "euler", "forward_diff", "backward_diff", "gbt"]


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(1.0, np.max(np.abs(np.asarray(b))))


def _scipy(sys, dt, method, alpha=None):
    return scipy.signal.cont2discrete(sys, dt, method=method, alpha=alpha)[:4]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nmp", [(1, 1, 1), (5, 2, 3), (4, 3, 1)])
def test_matches_scipy_numpy(rng, method, nmp):
    n, m, p = nmp
    A, B, C, D = random_stable_system(rng, n, m, p)
    if method == "impulse":
        D = np.zeros_like(D)
    dt = float(rng.uniform(0.01, 1.0))
    alpha = float(rng.uniform()) if method == "gbt" else None
    ours = discretize(A, B, C, D, dt, method=method, alpha=alpha)
    ref = _scipy((A, B, C, D), dt, method, alpha)
    for o, r in zip(ours, ref, strict=True):
        assert isinstance(o, np.ndarray) and o.dtype == np.float64
        assert o.shape == r.shape
        assert _rel(o, r) < 1e-10


@pytest.mark.parametrize("method", ["zoh", "foh", "bilinear", "impulse"])
def test_batched_torch_matches_scipy_per_entry(rng, method):
    n, m, p, batch = 3, 2, 2, (2, 3)
    systems = [random_stable_system(rng, n, m, p) for _ in range(6)]
    A, B, C, D = (torch.tensor(np.stack([s[i] for s in systems]).reshape(batch + s0.shape))
                  for i, s0 in enumerate(systems[0]))
    if method == "impulse":
        D = torch.zeros_like(D)
    dt = torch.tensor(rng.uniform(0.05, 0.5, size=batch))
    ours = discretize(A, B, C, D, dt, method=method)
    for o in ours:
        assert isinstance(o, torch.Tensor) and o.shape[:2] == batch
    for i in range(batch[0]):
        for j in range(batch[1]):
            ref = _scipy(tuple(t[i, j].numpy() for t in (A, B, C, D)), float(dt[i, j]), method)
            for o, r in zip(ours, ref, strict=True):
                assert _rel(o[i, j].numpy(), r) < 1e-10


def test_dt_broadcasts_against_unbatched_system(rng):
    A, B, C, D = (torch.tensor(x) for x in random_stable_system(rng, 3, 1, 1))
    dt = torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)
    Ad, Bd, Cd, Dd = discretize(A, B, C, D, dt)
    assert Ad.shape == (3, 3, 3) and Cd.shape == (3, 1, 3)
    ref = _scipy(tuple(t.numpy() for t in (A, B, C, D)), 0.3, "zoh")
    assert _rel(Bd[1].numpy(), ref[1]) < 1e-10


@pytest.mark.parametrize("method", ["zoh", "foh", "impulse", "bilinear", "backward_diff"])
def test_singular_A(method):
    # Double integrator: A is nilpotent, so A^{-1} does not exist.
    A = np.array([[0.0, 1.0], [0.0, 0.0]])
    B = np.array([[0.0], [1.0]])
    C, D = np.array([[1.0, 0.0]]), np.zeros((1, 1))
    dt = 0.25
    ours = discretize(A, B, C, D, dt, method=method)
    ref = _scipy((A, B, C, D), dt, method)
    for o, r in zip(ours, ref, strict=True):
        assert _rel(o, r) < 1e-12
    if method == "zoh":
        np.testing.assert_allclose(ours[1].ravel(), [dt**2 / 2, dt], rtol=1e-14)


def test_scalar_D_and_float32_tensor(rng):
    A, B, C, _ = random_stable_system(rng, 4, 1, 2)
    Ad, Bd, Cd, Dd = discretize(A, B, C, 0, 0.1)
    assert Dd.shape == (2, 1) and np.all(Dd == 0)
    out32 = discretize(*(torch.tensor(x, dtype=torch.float32) for x in (A, B, C)), torch.zeros(2, 1), 0.1)
    assert all(t.dtype == torch.float32 for t in out32)
    assert _rel(out32[0].numpy(), Ad) < 1e-5


@pytest.mark.parametrize("method", ["zoh", "foh", "bilinear", "impulse"])
def test_gradcheck(rng, method):
    A, B, C, D = (torch.tensor(x, requires_grad=True) for x in random_stable_system(rng, 2, 2, 1))
    if method == "impulse":
        D = torch.zeros(1, 2, dtype=torch.float64)
    dt = torch.tensor([0.2, 0.45], dtype=torch.float64, requires_grad=True)

    def f(A, B, C, dt):
        return discretize(A, B, C, D, dt, method=method)

    assert torch.autograd.gradcheck(f, (A, B, C, dt))


# ---- diagonal systems -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["zoh", "bilinear", "euler", "backward_diff", "gbt"])
def test_diagonal_matches_dense_scipy(rng, method):
    N = 5
    lam = -rng.uniform(0.1, 3, size=N)
    B = rng.normal(size=N)
    dt = float(rng.uniform(0.01, 1.0))
    alpha = float(rng.uniform()) if method == "gbt" else None
    Ld, Bd = discretize_diagonal(torch.tensor(lam), torch.tensor(B), dt, method=method, alpha=alpha)
    Ad_ref, Bd_ref, _, _ = _scipy((np.diag(lam), B[:, None], np.eye(N), np.zeros((N, 1))), dt, method, alpha)
    np.testing.assert_allclose(np.diag(Ad_ref), Ld.numpy(), rtol=1e-12)
    np.testing.assert_allclose(Bd_ref[:, 0], Bd.numpy(), rtol=1e-12)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_diagonal_complex_matches_dense(rng, method):
    # A complex diagonal is a real 2x2 rotation-decay block per conjugate pair; compare with
    # the dense torch path (itself checked against scipy above) on the complex matrices.
    N = 4
    lam = -rng.uniform(0.1, 2, size=N) + 1j * rng.normal(scale=5, size=N)
    B = rng.normal(size=N) + 1j * rng.normal(size=N)
    dt = torch.tensor([[0.03], [0.2], [0.9]], dtype=torch.float64)  # per-channel steps
    Ld, Bd = discretize_diagonal(torch.tensor(lam), torch.tensor(B), dt, method=method)
    assert Ld.shape == (3, N) and Ld.dtype == torch.complex128
    for h in range(3):
        Ad, Bdd, _, _ = discretize(torch.diag(torch.tensor(lam)), torch.tensor(B)[:, None],
                                   torch.eye(N, dtype=torch.complex128), torch.zeros(N, 1, dtype=torch.complex128),
                                   dt[h, 0], method=method)
        np.testing.assert_allclose(torch.diagonal(Ad).numpy(), Ld[h].numpy(), rtol=1e-12)
        np.testing.assert_allclose(Bdd[:, 0].numpy(), Bd[h].numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_diagonal_zoh_near_zero_eigenvalue(dtype):
    # (e^{dt lam} - 1)/lam is 0 or NaN in float32 for |lam| <= 1e-6; phi_1 keeps it exact.
    lam = torch.tensor([0.0, -1e-9, 1e-7, -1e-5, -1e-3, -1.0], dtype=dtype)
    dt = 0.01
    _, Bd = discretize_diagonal(lam, torch.ones_like(lam), dt)
    lam64 = lam.double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.where(lam64 == 0, dt, np.expm1(dt * lam64) / np.where(lam64 == 0, 1, lam64))
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    np.testing.assert_allclose(Bd.double().numpy(), exact, rtol=tol)


def test_diagonal_per_step_dt_and_gradcheck(rng):
    N, L = 3, 7
    lam = torch.tensor(-rng.uniform(0.1, 2, N) + 1j * rng.normal(size=N), requires_grad=True)
    B = torch.tensor(rng.normal(size=N) + 0j, requires_grad=True)
    dt = torch.tensor(rng.uniform(1e-3, 0.5, size=(L, 1)), requires_grad=True)  # one step per time
    Ld, Bd = discretize_diagonal(lam, B, dt)
    assert Ld.shape == (L, N)
    np.testing.assert_allclose(Ld[4].detach().numpy(), np.exp(dt[4].item() * lam.detach().numpy()), rtol=1e-13)
    assert torch.autograd.gradcheck(lambda la, b, d: discretize_diagonal(la, b, d), (lam, B, dt))
    assert torch.autograd.gradcheck(lambda la, b, d: discretize_diagonal(la, b, d, "bilinear"), (lam, B, dt))
    # The series branch (|dt*lam| < 1e-4) has the right gradient too.
    tiny = torch.tensor([1e-6, -3e-5], dtype=torch.float64, requires_grad=True)
    ones = torch.ones(2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda la: discretize_diagonal(la, ones, 0.5)[1], (tiny,))


# ---- bad input -------------------------------------------------------------------------


def test_bad_inputs(rng):
    A, B, C, D = random_stable_system(rng, 3, 2, 2)
    with pytest.raises(ValueError, match="unknown discretization method"):
        discretize(A, B, C, D, 0.1, method="magic")
    with pytest.raises(ValueError, match="needs alpha"):
        discretize(A, B, C, D, 0.1, method="gbt")
    with pytest.raises(ValueError, match=r"alpha must be .* \[0, 1\]"):
        discretize(A, B, C, D, 0.1, method="gbt", alpha=1.5)
    for dt in (0.0, -0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="dt must be"):
            discretize(A, B, C, D, dt)
    with pytest.raises(ValueError, match="dt must be > 0"):
        discretize(torch.tensor(A), B, C, D, torch.tensor([0.1, -0.2]))
    with pytest.raises(TypeError, match="dt must be"):
        discretize(A, B, C, D, "0.1")
    bad = A.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="A contains NaN or infinite"):
        discretize(bad, B, C, D, 0.1)
    with pytest.raises(ValueError, match="D contains NaN or infinite"):
        discretize(A, B, C, np.full_like(D, np.inf), 0.1)
    with pytest.raises(ValueError, match="A must be square"):
        discretize(A[:, :2], B, C, D, 0.1)
    with pytest.raises(ValueError, match="B must have n = 3 rows"):
        discretize(A, B[:2], C, D, 0.1)
    with pytest.raises(ValueError, match="C must have n = 3 columns"):
        discretize(A, B, C[:, :2], D, 0.1)
    with pytest.raises(ValueError, match=r"D must have shape \(p, m\) = \(2, 2\)"):
        discretize(A, B, C, D[:, :1], 0.1)
    with pytest.raises(ValueError, match="B must be a matrix"):
        discretize(A, B[:, 0], C, D, 0.1)
    with pytest.raises(ValueError, match=r"batch dimensions do not broadcast: .* dt \(3,\)"):
        discretize(np.stack([A, A]), B, C, D, np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="strictly proper"):
        discretize(A, B, C, D + 1.0, 0.1, method="impulse")
    with pytest.raises(TypeError, match="must be numeric"):
        discretize(A, B, [["a", "b", "c"]] * 2, D, 0.1)
    with pytest.raises(ValueError, match="also changes C and D"):
        discretize_diagonal(torch.ones(2), torch.ones(2), 0.1, method="foh")
    with pytest.raises(ValueError, match="dt must be > 0"):
        discretize_diagonal(torch.ones(2), torch.ones(2), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="Lambda contains NaN"):
        discretize_diagonal(torch.tensor([np.nan, 1.0]), torch.ones(2), 0.1)


@pytest.mark.parametrize("method", ["zoh", "foh", "impulse"])
def test_fast_sampling_is_exact_to_rounding(rng, method):
    """1-norms of A·dt in (0.004, 0.1): torch.linalg.matrix_exp alone is off by up to ~1e-10 there."""
    n = int(rng.integers(2, 9))
    A = -np.diag(rng.uniform(0.5, 5.0, n))  # stable, fast-sampled: ||A dt||_1 ~ 0.005-0.08
    A[0, -1] = 0.3  # not diagonal
    B = rng.standard_normal((n, 1))
    C = rng.standard_normal((1, n))
    D = np.zeros((1, 1))
    dt = float(rng.uniform(0.002, 0.016))
    got = discretize(A, B, C, D, dt, method=method)
    ref = scipy.signal.cont2discrete((A, B, C, D), dt, method=method)[:4]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-13, atol=1e-15 * max(1.0, np.abs(r).max()))
