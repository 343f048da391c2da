"""rms_norm: the torch path and the Triton kernels against the float64 definition.

The definition is written out here, in float64 (mean square, reciprocal square
root, gain); gradients come from autograd through it. Triton runs interpreted on
a CPU-only machine (``TRITON_INTERPRET=1`` from conftest), with small sizes that
still leave a partial last row block and a row width that is not a power of 2.
"""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from sciamba.kernels import _rms_norm, rms_norm

DEV = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = ["torch", "triton"]


def reference(x, w, eps):
    x = x.double()
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if w is None else y * w.double()


def make(rng, shape, dtype, weight=True):
    x = torch.tensor(rng.standard_normal(shape) * 3.0 + 0.5, dtype=dtype, device=DEV)
    w = torch.tensor(rng.standard_normal(shape[-1]), dtype=torch.float64, device=DEV) if weight else None
    return x, w


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, weight", [((3, 7, 37), True), ((11, 5), False), ((1, 1), True),
                                           ((2, 9, 64), True)])
def test_float64_values_and_gradients(rng, backend, shape, weight):
    x, w = make(rng, shape, torch.float64, weight)
    eps = float(rng.uniform(1e-6, 1e-2))
    xs = [x.clone().requires_grad_(True), x.clone().requires_grad_(True)]
    ws = [None, None] if w is None else [w.clone().requires_grad_(True), w.clone().requires_grad_(True)]
    y = rms_norm(xs[0], ws[0], eps, backend=backend)
    y_ref = reference(xs[1], ws[1], eps)
    assert y.dtype == torch.float64 and y.shape == x.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.tensor(rng.standard_normal(shape), dtype=torch.float64, device=DEV)
    inputs = [xs[0]] + ([ws[0]] if w is not None else [])
    inputs_ref = [xs[1]] + ([ws[1]] if w is not None else [])
    for a, b in zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(y_ref, inputs_ref, g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.bfloat16, 1e-2),
                                        (torch.float16, 2e-3)])
def test_low_precision_keeps_its_dtype(rng, backend, dtype, tol):
    x, w = make(rng, (6, 33), dtype)
    w32 = w.float().requires_grad_(True)
    xg = x.clone().requires_grad_(True)
    y = rms_norm(xg, w32, 1e-5, backend=backend)
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), reference(x, w, 1e-5), rtol=tol, atol=tol)
    y.float().sum().backward()
    assert xg.grad.dtype == dtype and w32.grad.dtype == torch.float32
    x64, w64 = x.double().requires_grad_(True), w.clone().requires_grad_(True)
    reference(x64, w64, 1e-5).sum().backward()
    torch.testing.assert_close(w32.grad.double(), w64.grad, rtol=tol, atol=tol * 10)


def test_triton_gradcheck(rng):
    x, w = make(rng, (5, 6), torch.float64)
    torch.autograd.gradcheck(lambda a, b: rms_norm(a, b, 1e-3, backend="triton"),
                             (x.requires_grad_(True), w.requires_grad_(True)))


def test_non_contiguous_input_and_zero_rows(rng):
    x, w = make(rng, (4, 10, 3), torch.float64)
    xt = x.transpose(1, 2)  # (4, 3, 10) view, normalized over its own last axis
    w10 = w.new_ones(10)
    x0 = xt.clone()
    x0[1] = 0.0
    for backend in BACKENDS:
        torch.testing.assert_close(rms_norm(xt, w10, 1e-5, backend=backend), reference(xt, w10, 1e-5))
        assert (rms_norm(x0, w10, 1e-5, backend=backend)[1] == 0).all()  # a zero row stays zero


def test_matches_torch_functional(rng):
    x, w = make(rng, (3, 4, 16), torch.float32)
    torch.testing.assert_close(rms_norm(x, w.float(), 1e-5, backend="triton"),
                               F.rms_norm(x, (16,), w.float(), 1e-5), rtol=2e-6, atol=2e-6)


def test_bad_input():
    x = torch.randn(2, 5, device=DEV)
    with pytest.raises(ValueError, match=r"weight must have shape \(D,\) = \(5,\)"):
        rms_norm(x, torch.ones(4, device=DEV))
    with pytest.raises(ValueError, match="eps must be positive"):
        rms_norm(x, eps=0.0)
    with pytest.raises(ValueError, match="eps must be positive"):
        rms_norm(x, eps=float("nan"))
    with pytest.raises(TypeError, match="eps must be a real number"):
        rms_norm(x, eps="1e-5")
    with pytest.raises(ValueError, match="non-empty last axis"):
        rms_norm(torch.randn(3, 0, device=DEV))
    with pytest.raises(TypeError, match="floating-point"):
        rms_norm(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="unknown backend"):
        rms_norm(x, backend="cuda")


def test_docstring_examples_run():
    result = doctest.testmod(_rms_norm, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_auto_takes_triton_only_for_large_inputs(rng, monkeypatch):
    """"auto" on CUDA: PyTorch's op below TRITON_MIN_NUMEL elements, the kernels from it on."""
    from sciamba.kernels import _triton_norm

    calls = []
    real = _triton_norm.rms_norm_triton
    monkeypatch.setattr(_triton_norm, "rms_norm_triton", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(_rms_norm, "resolve_backend", lambda backend, device: "triton")  # as on CUDA
    x, w = make(rng, (4, 8), torch.float64)
    monkeypatch.setattr(_rms_norm, "TRITON_MIN_NUMEL", 33)
    rms_norm(x, w)
    assert calls == []
    monkeypatch.setattr(_rms_norm, "TRITON_MIN_NUMEL", 32)
    torch.testing.assert_close(rms_norm(x, w), reference(x, w, 1e-5))
    assert calls == [1]
    rms_norm(x[:1], w, backend="triton")  # an explicit choice is always honoured
    assert calls == [1, 1]


def test_wide_rows_and_extreme_eps(rng, monkeypatch):
    """Rows wider than the kernels' registers: an explicit Triton request is refused,
    "auto" takes PyTorch's op; eps is bounded so that it splits into float32."""
    x = torch.randn(2, _rms_norm.MAX_D + 1, device=DEV, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"at most 8192 elements, got D = 8193"):
        rms_norm(x, backend="triton")
    monkeypatch.setattr(_rms_norm, "resolve_backend", lambda backend, device: "triton")  # as on CUDA
    monkeypatch.setattr(_rms_norm, "TRITON_MIN_NUMEL", 1)
    torch.testing.assert_close(rms_norm(x), reference(x, None, 1e-5))  # auto: the torch path
    with pytest.raises(ValueError, match="at most 1e38"):
        rms_norm(x[:, :4], eps=3e38)


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivatives(rng, backend):
    """create_graph=True gives exact second derivatives on both paths (the
    Triton backward then switches to differentiable torch ops)."""
    x, w = make(rng, (3, 5), torch.float64)
    x.requires_grad_(True)
    w.requires_grad_(True)
    v = torch.tensor(rng.standard_normal((3, 5)), dtype=torch.float64, device=DEV)

    def hvp(f):
        g = torch.autograd.grad((f(x * x, w) * v).sum(), (x, w), create_graph=True)
        return torch.autograd.grad(sum(t.pow(2).sum() for t in g), (x, w))

    mine = hvp(lambda a, b: rms_norm(a, b, 1e-3, backend=backend))
    ref = hvp(lambda a, b: reference(a, b, 1e-3))
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


# ------------------------------------------------------------------ residual add + norm
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, weight", [((3, 7, 37), True), ((5, 16), False)])
def test_residual_float64_values_and_gradients(rng, backend, shape, weight):
    """h = x + residual and norm(h): both outputs, and gradients through both, against the definition."""
    x, w = make(rng, shape, torch.float64, weight)
    r, _ = make(rng, shape, torch.float64, False)
    eps = float(rng.uniform(1e-6, 1e-2))
    leaves = [[t.clone().requires_grad_(True) for t in (x, r) + ((w,) if weight else ())] for _ in range(2)]
    y, h = rms_norm(leaves[0][0], leaves[0][2] if weight else None, eps, residual=leaves[0][1], backend=backend)
    h_ref = leaves[1][0] + leaves[1][1]
    y_ref = reference(h_ref, leaves[1][2] if weight else None, eps)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=0)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    gy, gh = (torch.tensor(rng.standard_normal(shape), dtype=torch.float64, device=DEV) for _ in range(2))
    got = torch.autograd.grad((y * gy).sum() + (h * gh).sum(), leaves[0])
    want = torch.autograd.grad((y_ref * gy).sum() + (h_ref * gh).sum(), leaves[1], retain_graph=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)
    # only the normalized output used downstream (no gradient into h), and only h
    for loss in (lambda y, h: (y * gy).sum(), lambda y, h: (h * gh).sum()):
        y, h = rms_norm(leaves[0][0], leaves[0][2] if weight else None, eps, residual=leaves[0][1],
                        backend=backend)
        got = torch.autograd.grad(loss(y, h), leaves[0][:2])
        want = torch.autograd.grad(loss(y_ref, h_ref), leaves[1][:2], retain_graph=True)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_residual_mixed_dtypes_and_out_dtype(rng, backend):
    """A bf16 branch added to a float32 residual stream: h in float32 (exact sum), y computed in float32
    and rounded to out_dtype (within one bf16 unit: Triton's interpreter truncates where the GPU rounds),
    and each input's gradient in its own dtype."""
    ulp = 2.0**-7  # relative spacing of bfloat16
    x, w = make(rng, (4, 9, 24), torch.bfloat16)
    r, _ = make(rng, (4, 9, 24), torch.float32, False)
    xg, rg, wg = x.clone().requires_grad_(True), r.clone().requires_grad_(True), w.float().requires_grad_(True)
    y, h = rms_norm(xg, wg, 1e-5, residual=rg, out_dtype=torch.bfloat16, backend=backend)
    assert (y.dtype, h.dtype) == (torch.bfloat16, torch.float32)
    assert torch.equal(h, x.float() + r)
    torch.testing.assert_close(y, reference(h, wg.detach(), 1e-5).to(torch.bfloat16), rtol=ulp, atol=0)
    y.float().sum().backward()
    assert (xg.grad.dtype, rg.grad.dtype, wg.grad.dtype) == (torch.bfloat16, torch.float32, torch.float32)
    h64 = h.detach().double().requires_grad_(True)
    w64 = wg.detach().double().requires_grad_(True)
    reference(h64, w64, 1e-5).sum().backward()
    torch.testing.assert_close(rg.grad.double(), h64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xg.grad, h64.grad.to(torch.bfloat16), rtol=ulp, atol=1e-6)
    torch.testing.assert_close(wg.grad.double(), w64.grad, rtol=1e-4, atol=1e-4)
    # out_dtype without a residual: the same value as a cast afterwards
    y32 = rms_norm(r, wg.detach(), 1e-5, backend=backend)
    y16 = rms_norm(r, wg.detach(), 1e-5, out_dtype=torch.bfloat16, backend=backend)
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16, y32.to(torch.bfloat16), rtol=ulp, atol=0)


def test_residual_bad_input():
    x = torch.randn(2, 5, device=DEV)
    with pytest.raises(ValueError, match=r"residual must have x's shape \(2, 5\)"):
        rms_norm(x, residual=torch.randn(2, 4, device=DEV))
    with pytest.raises(TypeError, match="residual must be a torch.Tensor"):
        rms_norm(x, residual=[1.0] * 5)
    with pytest.raises(TypeError, match="floating-point"):
        rms_norm(x, residual=torch.ones(2, 5, dtype=torch.int32, device=DEV))
    with pytest.raises(TypeError, match="out_dtype must be one of"):
        rms_norm(x, out_dtype=torch.int8)
    with pytest.raises(TypeError, match="out_dtype must be one of"):
        rms_norm(x, out_dtype="bfloat16")
    if DEV == "cpu":
        with pytest.raises(ValueError, match="residual is on meta"):
            rms_norm(x, residual=torch.empty(2, 5, device="meta"))
