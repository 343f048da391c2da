"""``selective_scan_ref`` against independent definitions: a NumPy loop and scipy.signal.lfilter."""

import numpy as np
import pytest
import scipy.signal
import torch
from sciamba.kernels import selective_scan_ref


def numpy_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None):
    """The scan written out element by element from the issue's math (float64)."""
    b, d, L = u.shape
    N = A.shape[1]
    y = np.zeros((b, d, L))
    last = np.zeros((b, d, N))
    for i in range(b):
        for c in range(d):
            h = np.zeros(N) if h0 is None else h0[i, c].copy()
            for t in range(L):
                dt = delta[i, c, t] + (0.0 if delta_bias is None else delta_bias[c])
                if delta_softplus:
                    dt = np.log1p(np.exp(dt)) if dt <= 20 else dt
                if B.ndim == 2:
                    Bt = B[c]
                else:
                    Bt = B[i, c // (d // B.shape[1]), :, t]
                if C.ndim == 2:
                    Ct = C[c]
                else:
                    Ct = C[i, c // (d // C.shape[1]), :, t]
                h = np.exp(dt * A[c]) * h + dt * u[i, c, t] * Bt
                out = float(np.dot(Ct, h))
                if D is not None:
                    out += D[c] * u[i, c, t]
                if z is not None:
                    out *= z[i, c, t] / (1.0 + np.exp(-z[i, c, t]))
                y[i, c, t] = out
            last[i, c] = h
    return y, last


def _inputs(rng, b, d, L, N, B_shape, C_shape, options):
    arr = {
        "u": rng.standard_normal((b, d, L)),
        "delta": rng.standard_normal((b, d, L)) if "softplus" in options else rng.uniform(0.01, 1.5, (b, d, L)),
        "A": -rng.uniform(0.05, 3.0, (d, N)),
        "B": rng.standard_normal(B_shape),
        "C": rng.standard_normal(C_shape),
    }
    opt = {
        "D": rng.standard_normal(d) if "D" in options else None,
        "z": rng.standard_normal((b, d, L)) if "z" in options else None,
        "delta_bias": rng.uniform(-1, 1, d) if "bias" in options else None,
        "h0": rng.standard_normal((b, d, N)) if "h0" in options else None,
    }
    return arr, opt


def _t(x, dtype=torch.float64):
    return None if x is None else torch.tensor(x, dtype=dtype)


@pytest.mark.parametrize(
    "b, d, L, N, form, options",
    [
        (2, 3, 1, 4, "variable", ()),
        (1, 5, 17, 3, "variable", ("D", "z", "bias", "softplus", "h0")),
        (2, 6, 9, 2, "grouped", ("D", "softplus")),
        (2, 4, 13, 5, "invariant", ("z", "h0")),
        (3, 6, 7, 1, "mixed", ("bias", "D", "z", "softplus", "h0")),
    ],
)
def test_reference_matches_numpy_loop(rng, b, d, L, N, form, options):
    G = {"variable": 1, "grouped": 3, "invariant": 1, "mixed": 2}[form]
    B_shape = {"variable": (b, N, L), "grouped": (b, G, N, L), "invariant": (d, N), "mixed": (d, N)}[form]
    C_shape = {"variable": (b, N, L), "grouped": (b, G, N, L), "invariant": (d, N), "mixed": (b, G, N, L)}[form]
    arr, opt = _inputs(rng, b, d, L, N, B_shape, C_shape, options)
    B_np = arr["B"][:, None] if len(B_shape) == 3 else arr["B"]
    C_np = arr["C"][:, None] if len(C_shape) == 3 else arr["C"]
    y_np, h_np = numpy_scan(
        arr["u"], arr["delta"], arr["A"], B_np, C_np, opt["D"], opt["z"], opt["delta_bias"], "softplus" in options,
        opt["h0"],
    )
    y, h = selective_scan_ref(
        *(_t(arr[k]) for k in ("u", "delta", "A", "B", "C")),
        D=_t(opt["D"]),
        z=_t(opt["z"]),
        delta_bias=_t(opt["delta_bias"]),
        delta_softplus="softplus" in options,
        return_last_state=True,
        initial_state=_t(opt["h0"]),
    )
    assert y.dtype == torch.float64 and h.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), y_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), h_np, rtol=1e-12, atol=1e-12)


def test_reference_lti_case_is_lfilter(rng):
    """Constant Δ and time-invariant B, C: each state is a first-order IIR filter."""
    b, d, L, N = 2, 3, 200, 4
    u = rng.standard_normal((b, d, L))
    dt = rng.uniform(0.01, 0.5, d)
    A = -rng.uniform(0.1, 2.0, (d, N))
    B, C, D = rng.standard_normal((d, N)), rng.standard_normal((d, N)), rng.standard_normal(d)
    h0 = rng.standard_normal((b, d, N))
    y = selective_scan_ref(
        _t(u), _t(np.broadcast_to(dt[None, :, None], u.shape).copy()), _t(A), _t(B), _t(C), _t(D),
        initial_state=_t(h0),
    ).numpy()
    expected = D[None, :, None] * u
    for c in range(d):
        for n in range(N):
            a = np.exp(dt[c] * A[c, n])
            # h_t = a h_{t-1} + Δ B u_t; the initial condition enters as zi = a h0.
            h, _ = scipy.signal.lfilter([dt[c] * B[c, n]], [1.0, -a], u[:, c, :], axis=-1, zi=(a * h0[:, c, n])[:, None])
            expected[:, c, :] += C[c, n] * h
    np.testing.assert_allclose(y, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_reference_low_precision_computes_in_float32(rng, dtype):
    b, d, L, N = 2, 3, 40, 4
    u = torch.tensor(rng.standard_normal((b, d, L))).to(dtype)
    delta = torch.tensor(rng.uniform(0.01, 1.0, (b, d, L))).to(dtype)
    A = -torch.tensor(rng.uniform(0.1, 2.0, (d, N)), dtype=torch.float32)
    B = torch.tensor(rng.standard_normal((b, N, L))).to(dtype)
    C = torch.tensor(rng.standard_normal((b, N, L))).to(dtype)
    y, h = selective_scan_ref(u, delta, A, B, C, return_last_state=True)
    assert y.dtype == dtype and h.dtype == torch.float32
    y64 = selective_scan_ref(u.double(), delta.double(), A.double(), B.double(), C.double())
    # Only the float32 arithmetic and the final rounding to `dtype` differ.
    out_eps = torch.finfo(dtype).eps
    torch.testing.assert_close(y.double(), y64, rtol=2 * out_eps, atol=2 * out_eps * y64.abs().max().item())


def test_reference_is_differentiable(rng):
    b, d, L, N = 1, 2, 5, 3
    args = [
        torch.tensor(rng.standard_normal((b, d, L)), requires_grad=True),
        torch.tensor(rng.uniform(0.1, 1, (b, d, L)), requires_grad=True),
        torch.tensor(-rng.uniform(0.1, 1, (d, N)), requires_grad=True),
        torch.tensor(rng.standard_normal((b, N, L)), requires_grad=True),
        torch.tensor(rng.standard_normal((b, N, L)), requires_grad=True),
    ]
    assert torch.autograd.gradcheck(lambda *a: selective_scan_ref(*a), args)
