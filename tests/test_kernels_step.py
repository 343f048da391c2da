"""selective_state_update with backend="triton" (compiled on CUDA, interpreted on CPU) against the scan."""

import pytest
import torch

from sciamba.kernels import available_backends, selective_scan_ref, selective_state_update

pytestmark = pytest.mark.triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"
if "triton" not in available_backends(DEV) and "triton-interpret" not in available_backends(DEV):
    pytest.skip("Triton cannot run here", allow_module_level=True)


def _t(rng, *shape, dtype=torch.float64):
    return torch.tensor(rng.standard_normal(shape), dtype=dtype, device=DEV)


@pytest.mark.parametrize(
    "b, d, N, G, B_form, C_form, options",
    [
        (3, 7, 4, 1, "variable", "variable", ()),
        (2, 6, 5, 3, "grouped", "invariant", ("D", "z", "bias", "softplus")),
        (1, 70, 16, 1, "invariant", "grouped", ("D", "softplus")),  # several channel blocks
        (2, 9, 1, 1, "variable", "variable", ("z", "bias")),
    ],
)
def test_triton_steps_equal_the_reference_scan_float64(rng, b, d, N, G, B_form, C_form, options):
    L = 6
    mats = {"variable": lambda: _t(rng, b, N, L), "grouped": lambda: _t(rng, b, G, N, L),
            "invariant": lambda: _t(rng, d, N)}
    u, delta = _t(rng, b, d, L), _t(rng, b, d, L)
    A = -torch.tensor(rng.uniform(0.1, 2, (d, N)), device=DEV)
    B, C = mats[B_form](), mats[C_form]()
    D = _t(rng, d) if "D" in options else None
    z = _t(rng, b, d, L) if "z" in options else None
    bias = _t(rng, d) if "bias" in options else None
    sp = "softplus" in options
    if not sp:
        delta = delta.abs()
    h0 = _t(rng, b, d, N)
    y, h = selective_scan_ref(u, delta, A, B, C, D, z, bias, sp, True, initial_state=h0)
    state = h0.clone()
    at = lambda M, i: M if M.dim() == 2 else M[..., i]  # noqa: E731
    steps = [selective_state_update(state, u[..., i], delta[..., i], A, at(B, i), at(C, i), D=D,
                                    z=None if z is None else z[..., i], dt_bias=bias, dt_softplus=sp,
                                    backend="triton")
             for i in range(L)]
    torch.testing.assert_close(torch.stack(steps, -1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_step_low_precision_matches_torch_step(rng, dtype):
    b, d, N = 4, 33, 16
    state = _t(rng, b, d, N, dtype=torch.float32)
    args = dict(x=_t(rng, b, d, dtype=dtype), dt=_t(rng, b, d, dtype=dtype),
                A=-torch.rand(d, N, device=DEV) - 0.1, B=_t(rng, b, N, dtype=torch.float32),
                C=_t(rng, b, N, dtype=torch.float32), D=_t(rng, d, dtype=torch.float32),
                z=_t(rng, b, d, dtype=dtype), dt_bias=_t(rng, d, dtype=torch.float32), dt_softplus=True)
    s_tri, s_ref = state.clone(), state.clone()
    ptr = s_tri.data_ptr()
    y_tri = selective_state_update(s_tri, backend="triton", **args)
    y_ref = selective_state_update(s_ref, backend="torch", **args)
    assert y_tri.dtype == dtype and s_tri.data_ptr() == ptr
    torch.testing.assert_close(s_tri, s_ref, rtol=1e-5, atol=1e-5)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(y_tri.float(), y_ref.float(), **tol)


def test_triton_step_needs_a_contiguous_state(rng):
    b, d, N = 2, 5, 3
    state = _t(rng, b, N, d).transpose(1, 2)  # (b, d, N), not contiguous
    args = (_t(rng, b, d), _t(rng, b, d).abs(), -torch.rand(d, N, device=DEV, dtype=torch.float64),
            _t(rng, b, N), _t(rng, b, N))
    with pytest.raises(ValueError, match="needs it contiguous"):
        selective_state_update(state, *args, backend="triton")
    ref = state.clone()
    y = selective_state_update(state, *args, backend="auto")  # falls back to torch, in place
    y_ref = selective_state_update(ref, *args, backend="torch")
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(state, ref)
