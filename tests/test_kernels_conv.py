"""causal_conv1d: torch path and Triton kernels against the float64 definition.

The definition is ``F.conv1d(cat([initial_state, x], -1), weight[:, None, :], bias,
groups=dim)`` then SiLU, evaluated in float64; an FIR filter through
``scipy.signal.lfilter`` checks that definition independently. Triton runs
interpreted on a CPU-only machine (``TRITON_INTERPRET=1`` from conftest), so
its cases are small and its tiles are forced small (``_BLOCKS_OVERRIDE``) so
that they still cross channel and time block edges.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from sciamba.kernels import _causal_conv as cc
from sciamba.kernels import _triton_conv as tc
from sciamba.kernels import causal_conv1d

DEV = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("x", "weight", "bias", "initial_state")


def reference(x, weight, bias=None, silu=False, initial_state=None):
    """The definition, in float64."""
    x = x.double()
    K = weight.shape[1]
    if initial_state is None:
        initial_state = x.new_zeros(x.shape[0], x.shape[1], K - 1)
    xt = torch.cat([initial_state.double(), x], -1)  # (b, d, K-1+L)
    y = F.conv1d(xt, weight.double()[:, None, :], None if bias is None else bias.double(),
                 groups=x.shape[1])  # (b, d, L)
    return F.silu(y) if silu else y


def make(rng, b, d, L, K, *, bias=True, init=True, dtype=torch.float64, wdtype=None,
         channel_last=False):
    """Random inputs; ``x`` as a transposed ``(b, L, d)`` tensor when ``channel_last``."""
    wdtype = wdtype or dtype

    def t(shape, dt):
        return torch.tensor(rng.standard_normal(shape), dtype=dt, device=DEV)

    x = t((b, L, d), dtype).transpose(1, 2) if channel_last else t((b, d, L), dtype)
    return {
        "x": x,
        "weight": t((d, K), wdtype) * 0.7,
        "bias": t((d,), wdtype) if bias else None,
        "initial_state": t((b, d, K - 1), dtype) if init else None,
    }


def run(ins, silu, backend, grads=True):
    """Output and input gradients of causal_conv1d and of the float64 reference."""
    # detach() keeps the strides (a transposed or sliced x stays a view).
    mine = {k: (v.detach().requires_grad_(grads) if v is not None else None)
            for k, v in ins.items()}
    ref = {k: (v.detach().double().requires_grad_(grads) if v is not None else None)
           for k, v in ins.items()}
    y = causal_conv1d(mine["x"], mine["weight"], mine["bias"], "silu" if silu else None,
                      initial_state=mine["initial_state"], backend=backend)
    yr = reference(ref["x"], ref["weight"], ref["bias"], silu, ref["initial_state"])
    if not grads:
        return y, yr, {}, {}
    g = torch.tensor(np.random.default_rng(0).standard_normal(y.shape), dtype=y.dtype,
                     device=DEV)
    live = [k for k in NAMES if ins[k] is not None]
    gm = torch.autograd.grad(y, [mine[k] for k in live], g)
    gr = torch.autograd.grad(yr, [ref[k] for k in live], g.double())
    return y, yr, dict(zip(live, gm)), dict(zip(live, gr))


def assert_close(y, yr, gm, gr, rtol, atol, gatol=None):
    assert y.dtype == yr.dtype or y.dtype != torch.float64
    torch.testing.assert_close(y.double(), yr, rtol=rtol, atol=atol)
    for k in gr:
        assert gm[k].shape == gr[k].shape, k
        torch.testing.assert_close(gm[k].double(), gr[k], rtol=rtol, atol=gatol or atol,
                                   msg=lambda m, k=k: f"grad of {k}: {m}")


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these tiny problems on one intra-op thread.

    On a busy 2-core machine, the OpenMP pool of CPU ``F.conv1d`` with
    ``groups=dim`` took 8 ms (and up to seconds) for a (2, 5, 20) input with 2
    threads, against 0.07 ms with one; the arithmetic is the same.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_blocks():
    """Tiny Triton tiles (4 channels x 8 steps) so small problems cross block edges."""
    tc._BLOCKS_OVERRIDE = (4, 8, 1)
    yield
    tc._BLOCKS_OVERRIDE = None


# ------------------------------------------------------------------ torch path


@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("L", [1, 2, 3, 17, 257, 1000])
def test_torch_matches_definition(rng, L, K):
    for bias in (False, True):
        for init in (False, True):
            for silu in (False, True):
                ins = make(rng, 2, 5, L, K, bias=bias, init=init)
                y, yr, gm, gr = run(ins, silu, "torch")
                assert y.dtype == torch.float64 and y.is_contiguous()
                assert_close(y, yr, gm, gr, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [1, 3, 4, 7])
def test_definition_is_an_fir_filter(rng, K):
    # Independent of F.conv1d: per channel, y = lfilter(w[::-1], 1, [h, x])[K-1:].
    b, d, L = 2, 3, 41
    ins = make(rng, b, d, L, K)
    y = causal_conv1d(ins["x"], ins["weight"], ins["bias"], initial_state=ins["initial_state"],
                      backend="torch").cpu().numpy()
    x, w = ins["x"].cpu().numpy(), ins["weight"].cpu().numpy()
    h, beta = ins["initial_state"].cpu().numpy(), ins["bias"].cpu().numpy()
    expect = np.stack([
        np.stack([scipy.signal.lfilter(w[j, ::-1], [1.0], np.concatenate([h[i, j], x[i, j]]))
                  for j in range(d)]) for i in range(b)])[..., K - 1:] + beta[None, :, None]
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)
    # and the silu variant
    ys = causal_conv1d(ins["x"], ins["weight"], ins["bias"], "silu",
                       initial_state=ins["initial_state"], backend="torch").cpu().numpy()
    np.testing.assert_allclose(ys, expect / (1 + np.exp(-expect)), rtol=1e-12, atol=1e-12)


def test_torch_gradcheck(rng):
    ins = make(rng, 2, 3, 7, 4)
    args = [ins[k].detach().requires_grad_() for k in NAMES]

    def f(x, w, bias, h):
        return causal_conv1d(x, w, bias, "silu", initial_state=h, backend="torch")

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-8)


def test_torch_channel_last_and_conv_weight(rng):
    ins = make(rng, 3, 6, 19, 4, channel_last=True)
    assert not ins["x"].is_contiguous()
    y, yr, gm, gr = run(ins, True, "torch")
    assert y.is_contiguous()
    assert_close(y, yr, gm, gr, rtol=1e-12, atol=1e-12)
    # nn.Conv1d's (dim, 1, K) weight is accepted as is.
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3, dtype=torch.float64, device=DEV)
    y2 = causal_conv1d(ins["x"], conv.weight, conv.bias, backend="torch")
    torch.testing.assert_close(y2, conv(ins["x"])[..., :19], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_torch_low_precision(rng, dtype):
    ins = make(rng, 2, 5, 33, 4, dtype=dtype, wdtype=torch.float32)
    y, yr, gm, gr = run(ins, True, "torch")
    assert y.dtype == dtype
    tol = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 4e-3}[dtype]
    assert_close(y, yr, gm, gr, rtol=tol, atol=tol, gatol=tol * 4)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_autocast_keeps_float32_sums(rng, backend):
    # Under bfloat16 autocast the sums still run in float32: the output is x's
    # dtype and equals the result outside autocast.
    ins = make(rng, 2, 5, 16, 4, dtype=torch.float32)
    x, w, bias = ins["x"], ins["weight"], ins["bias"]
    plain = causal_conv1d(x, w, bias, "silu", backend=backend)
    with torch.autocast(DEV, dtype=torch.bfloat16):
        mixed = causal_conv1d(x, w, bias, "silu", backend=backend)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_pieces_with_initial_state_equal_whole(rng, backend):
    b, d, L, K, cut = 2, 5, 23, 4, 9
    ins = make(rng, b, d, L, K, init=False, dtype=torch.float32)
    x, w, bias = ins["x"], ins["weight"], ins["bias"]
    whole = causal_conv1d(x, w, bias, "silu", backend=backend)
    first = causal_conv1d(x[..., :cut], w, bias, "silu", backend=backend)
    second = causal_conv1d(x[..., cut:], w, bias, "silu", initial_state=x[..., cut - K + 1:cut],
                           backend=backend)
    torch.testing.assert_close(torch.cat([first, second], -1), whole, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ Triton


TRITON_CASES = [  # (b, d, L, K, bias, init, silu)
    (2, 5, 17, 4, True, True, True),
    (2, 5, 17, 4, False, False, True),
    (1, 7, 19, 3, True, False, False),
    (2, 3, 1, 4, True, True, True),
    (1, 5, 2, 2, False, True, True),
    (2, 6, 3, 3, True, True, False),
    (1, 9, 10, 1, True, True, True),
    (1, 3, 26, 2, False, True, False),
]


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", TRITON_CASES, ids=lambda c: "b{}d{}L{}K{}{}{}{}".format(
    *c[:4], "-bias" * c[4], "-init" * c[5], "-silu" * c[6]))
def test_triton_matches_definition(rng, small_blocks, case, dtype):
    b, d, L, K, bias, init, silu = case
    ins = make(rng, b, d, L, K, bias=bias, init=init, dtype=dtype)
    y, yr, gm, gr = run(ins, silu, "triton")
    assert y.dtype == dtype and y.is_contiguous() and y.shape == (b, d, L)
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    assert_close(y, yr, gm, gr, rtol=tol, atol=tol, gatol=tol * 4)


@pytest.mark.triton
@pytest.mark.parametrize("bias", [True, False])
def test_triton_backward_into_zeroed_buffers(rng, small_blocks, bias):
    """The weight and bias gradients added with atomics into a caller's zeroed buffers (the
    fused Mamba block's path) equal the per-tile sums the host adds up; wrong buffers are refused."""
    ins = make(rng, 2, 5, 17, 4, bias=bias, init=False, dtype=torch.float64)
    x, w, bb = ins["x"], ins["weight"], ins["bias"]
    gy = torch.randn(x.shape, dtype=x.dtype, device=x.device)
    dx, dw, db, _ = tc._backward(gy, x, w, bb, None, True)
    dw_out = torch.zeros_like(w)
    db_out = torch.zeros_like(bb) if bias else None
    dx2, dw2, db2, _ = tc._backward(gy, x, w, bb, None, True, dw_out=dw_out, db_out=db_out)
    assert dw2 is dw_out and db2 is db_out
    torch.testing.assert_close(dx2, dx, rtol=0, atol=0)
    torch.testing.assert_close(dw2, dw, rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(db2, db, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="dw_out must be"):
        tc._backward(gy, x, w, bb, None, True, dw_out=torch.zeros(5, 3, dtype=w.dtype), db_out=db_out)
    with pytest.raises(ValueError, match="dw_out must be"):  # db_out alone: not silently ignored
        tc._backward(gy, x, w, bb, None, True, db_out=torch.zeros(5, dtype=w.dtype))
    if bias:
        with pytest.raises(ValueError, match="db_out must be"):
            tc._backward(gy, x, w, bb, None, True, dw_out=torch.zeros_like(w))
    else:
        with pytest.raises(ValueError, match="db_out was given, but there is no such gradient"):
            tc._backward(gy, x, w, bb, None, True, dw_out=torch.zeros_like(w), db_out=torch.zeros(5))


@pytest.mark.triton
def test_triton_time_block_shorter_than_halo(rng):
    # Asked for 2-step tiles with K = 4: the tile grows to 4 steps so that only
    # the first time block reaches back into initial_state.
    tc._BLOCKS_OVERRIDE = (2, 2, 1)
    try:
        assert tc._tiles(torch.empty(1, 3, 9), 4)[1] == 4
        ins = make(rng, 2, 3, 9, 4, dtype=torch.float32)
        y, yr, gm, gr = run(ins, True, "triton")
    finally:
        tc._BLOCKS_OVERRIDE = None
    assert_close(y, yr, gm, gr, rtol=2e-6, atol=2e-6, gatol=8e-6)


@pytest.mark.triton
def test_triton_default_blocks(rng):
    # The production tile choice (one tile covers this problem); K = 8 is wide.
    ins = make(rng, 2, 5, 21, 8, dtype=torch.float32)
    y, yr, gm, gr = run(ins, True, "triton")
    assert_close(y, yr, gm, gr, rtol=2e-6, atol=2e-6, gatol=1e-5)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_channel_last_view(rng, small_blocks, dtype):
    # x is a (b, L, d) tensor's transpose: read through its strides, no copy; the
    # gradient comes back in the same channel-last layout.
    ins = make(rng, 2, 6, 13, 4, dtype=dtype, wdtype=torch.float32, channel_last=True)
    assert ins["x"].stride(1) == 1
    y, yr, gm, gr = run(ins, True, "triton")
    assert y.is_contiguous() and y.dtype == dtype
    assert gm["x"].stride() == ins["x"].stride()
    tol = 2e-6 if dtype == torch.float32 else 3e-2
    assert_close(y, yr, gm, gr, rtol=tol, atol=tol, gatol=tol * 4)


@pytest.mark.triton
def test_triton_strided_view(rng, small_blocks):
    # Every other time step of a longer tensor (stride_l = 2) and a stride-0 dy
    # (the gradient of y.sum()) are read in place too.
    ins = make(rng, 2, 5, 22, 3, dtype=torch.float32)
    ins["x"] = ins["x"][..., ::2]
    assert ins["x"].stride() == (110, 22, 2)
    y, yr, gm, gr = run(ins, True, "triton")
    assert_close(y, yr, gm, gr, rtol=2e-6, atol=2e-6, gatol=8e-6)
    x = ins["x"].detach().requires_grad_()
    (gx,) = torch.autograd.grad(causal_conv1d(x, ins["weight"], backend="triton").sum(), [x])
    xr = ins["x"].double().requires_grad_()
    (gxr,) = torch.autograd.grad(reference(xr, ins["weight"]).sum(), [xr])
    torch.testing.assert_close(gx.double(), gxr, rtol=2e-6, atol=2e-6)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision_matches_torch_path(rng, small_blocks, dtype):
    ins = make(rng, 2, 5, 18, 4, dtype=dtype, wdtype=torch.float32)
    y, yr, gm, gr = run(ins, True, "triton")
    yt, _, gt, _ = run(ins, True, "torch")
    assert y.dtype == dtype and gm["x"].dtype == dtype
    assert_close(y, yr, gm, gr, rtol=3e-2, atol=3e-2, gatol=1e-1)
    # Both paths sum in float32 and round once: they agree to an output ulp.
    torch.testing.assert_close(y, yt, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(gm["weight"], gt["weight"], rtol=1e-4, atol=1e-4)


@pytest.mark.triton
def test_triton_no_grad_and_partial_grads(rng, small_blocks):
    ins = make(rng, 2, 5, 11, 3, dtype=torch.float32)
    with torch.no_grad():
        y = causal_conv1d(ins["x"], ins["weight"], ins["bias"], "silu",
                          initial_state=ins["initial_state"], backend="triton")
    yr = reference(ins["x"], ins["weight"], ins["bias"], True, ins["initial_state"])
    torch.testing.assert_close(y.double(), yr, rtol=2e-6, atol=2e-6)
    # Only the weight needs a gradient (a frozen input): the rest gets none.
    w = ins["weight"].clone().requires_grad_()
    out = causal_conv1d(ins["x"], w, ins["bias"], "silu", initial_state=ins["initial_state"],
                        backend="triton")
    (gw,) = torch.autograd.grad(out.sum(), [w])
    wr = ins["weight"].double().requires_grad_()
    (gwr,) = torch.autograd.grad(
        reference(ins["x"], wr, ins["bias"], True, ins["initial_state"]).sum(), [wr])
    torch.testing.assert_close(gw.double(), gwr, rtol=1e-5, atol=1e-5)


@pytest.mark.triton
def test_triton_width_limit(rng):
    ins = make(rng, 1, 2, 5, tc.MAX_K + 1, dtype=torch.float32)
    with pytest.raises(ValueError, match="supports kernel widths K <= 16"):
        causal_conv1d(ins["x"], ins["weight"], backend="triton")


def test_auto_uses_torch_on_cpu(rng, monkeypatch):
    ins = make(rng, 1, 3, 6, 4, dtype=torch.float32)
    x = ins["x"].cpu()
    called = []
    monkeypatch.setattr(cc, "causal_conv1d_torch",
                        lambda *a, **k: called.append(1) or torch.zeros(1))
    causal_conv1d(x, ins["weight"].cpu(), backend="auto")
    assert called == [1]


# ------------------------------------------------------------------ errors


def _good():
    return torch.randn(2, 3, 5), torch.randn(3, 4)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"x": [1.0]}, TypeError, "x must be a torch.Tensor, got list"),
    ({"x": torch.ones(2, 3, 5, dtype=torch.int64)}, TypeError, "x must be a floating-point"),
    ({"x": torch.ones(2, 3, 5, dtype=torch.complex64)}, TypeError, "x is complex"),
    ({"x": torch.randn(3, 5)}, ValueError, r"x must have shape \(batch, dim, L\)"),
    ({"x": torch.randn(2, 3, 0)}, ValueError, "x has an empty axis"),
    ({"weight": torch.randn(4, 4)}, ValueError, r"weight must have shape \(dim, K\)"),
    ({"weight": torch.randn(3, 0)}, ValueError, "K >= 1"),
    ({"weight": torch.randn(3, 2, 4)}, ValueError, r"or \(dim, 1, K\)"),
    ({"weight": torch.ones(3, 4, dtype=torch.int32)}, TypeError, "weight must be a floating-point"),
    ({"weight": "w"}, TypeError, "weight must be a torch.Tensor"),
    ({"bias": torch.randn(4)}, ValueError, r"bias must have shape \(dim,\) = \(3,\)"),
    ({"bias": torch.ones(3, dtype=torch.int64)}, TypeError, "bias must be a floating-point"),
    ({"initial_state": torch.randn(2, 3, 4)}, ValueError,
     r"initial_state must have shape \(batch, dim, K - 1\) = \(2, 3, 3\)"),
    ({"initial_state": torch.ones(2, 3, 3, dtype=torch.complex64)}, TypeError,
     "initial_state is complex"),
    ({"activation": "relu"}, ValueError, "unknown activation 'relu'; choose None or 'silu'"),
    ({"activation": True}, TypeError, "activation must be None or a string"),
    ({"backend": "cuda"}, ValueError, "unknown backend 'cuda'"),
])
def test_errors(kwargs, exc, match):
    x, w = _good()
    args = {"x": x, "weight": w, "bias": None, "activation": None, "initial_state": None, "backend": "torch"}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        causal_conv1d(args.pop("x"), args.pop("weight"), args.pop("bias"), args.pop("activation"),
                      **args)


def test_error_devices_and_dtypes():
    x, w = _good()
    with pytest.raises(TypeError, match="x has dtype torch.float8_e4m3fn; supported are"):
        causal_conv1d(x.to(torch.float8_e4m3fn), w, backend="torch")
    meta = torch.randn(3, device="meta")
    with pytest.raises(ValueError, match="bias is on meta but x is on cpu; move all inputs"):
        causal_conv1d(x, w, meta, backend="torch")
    with pytest.raises(ValueError, match="weight is on meta but x is on cpu"):
        causal_conv1d(x, w.to("meta"), backend="torch")
    with pytest.raises(ValueError, match="initial_state is on meta"):
        causal_conv1d(x, w, initial_state=torch.randn(2, 3, 3, device="meta"), backend="torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only: Triton on CPU needs the interpreter")
def test_error_triton_without_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, w = _good()
    with pytest.raises(ValueError, match="backend='triton' cannot run on cpu tensors here"):
        causal_conv1d(x, w, backend="triton")


@pytest.mark.triton
def test_error_triton_kernels_fail_to_import(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sciamba.kernels._triton_conv", None)
    x, w = _good()
    with pytest.raises(RuntimeError, match="backend='triton' failed to import its kernels"):
        causal_conv1d(x.to(DEV), w.to(DEV), backend="triton")


def test_docstring_examples_run():
    for mod in (cc, tc):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, mod.__name__


def test_triton_refuses_higher_derivatives(rng):
    x = torch.tensor(rng.standard_normal((1, 3, 9)), dtype=torch.float64, device=DEV,
                     requires_grad=True)
    w = torch.tensor(rng.standard_normal((3, 4)), dtype=torch.float64, device=DEV)
    y = causal_conv1d(x * x, w, activation="silu", backend="triton")
    with pytest.raises(RuntimeError, match="differentiable once.*backend='torch'"):
        torch.autograd.grad(y.sum(), x, create_graph=True)
    # The torch path is F.conv1d: second derivatives work there.
    y = causal_conv1d(x * x, w, activation="silu", backend="torch")
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert torch.autograd.grad(g.sum(), x)[0].shape == x.shape


# ------------------------------------------------------------- causal_conv1d_update
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
@pytest.mark.parametrize("K,bias,silu", [(1, True, True), (2, False, True), (4, True, False), (5, True, True)])
def test_update_steps_equal_the_definition(rng, backend, K, bias, silu):
    """Stepping from a random state reproduces the float64 definition with that state as
    ``initial_state``, in place, and leaves the last K - 1 inputs; x is a strided slice (as the
    Mamba block passes a half of its input projection) and dim crosses block edges."""
    b, d, L = 3, 37, 9
    ins = make(rng, b, d, L, K, bias=bias)
    wide = torch.cat([ins["x"], ins["x"]], 1)  # (b 2d L): x[..., t] below has strides (2dL, L)
    state = ins["initial_state"].clone()
    kept = state
    ys = [cc.causal_conv1d_update(wide[:, :d, t], state, ins["weight"], ins["bias"],
                                  "silu" if silu else None, backend=backend) for t in range(L)]
    assert state is kept and ys[0].shape == (b, d) and ys[0].dtype == torch.float64
    want = reference(ins["x"], ins["weight"], ins["bias"], silu, ins["initial_state"])
    torch.testing.assert_close(torch.stack(ys, -1), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, ins["x"][..., L - (K - 1):], rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_update_half_precision_input_float32_state(rng, backend):
    """A bfloat16 input with a float32 state (the Mamba block under autocast): sums in float32, the
    output rounded once to bfloat16, the state holding the inputs exactly."""
    b, d, L, K = 2, 19, 6, 4
    ins = make(rng, b, d, L, K, dtype=torch.float32)
    x = ins["x"].to(torch.bfloat16)
    state = torch.zeros(b, d, K - 1, device=DEV)
    ys = torch.stack([cc.causal_conv1d_update(x[..., t], state, ins["weight"], ins["bias"], "silu",
                                              backend=backend) for t in range(L)], -1)
    assert ys.dtype == torch.bfloat16
    want = reference(x, ins["weight"], ins["bias"], True)
    torch.testing.assert_close(ys.double(), want.to(torch.bfloat16).double(), rtol=8e-3, atol=8e-3)
    assert torch.equal(state, x[..., L - (K - 1):].float())


def test_update_errors(rng):
    x, w = torch.zeros(2, 3, device=DEV), torch.zeros(3, 4, device=DEV)
    with pytest.raises(ValueError, match=r"conv_state must have shape \(batch, dim, K - 1\) = \(2, 3, 3\)"):
        cc.causal_conv1d_update(x, torch.zeros(2, 3, 4, device=DEV), w)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, dim\)"):
        cc.causal_conv1d_update(x[:, :, None], torch.zeros(2, 3, 3, device=DEV), w)
    with pytest.raises(TypeError, match="conv_state"):
        cc.causal_conv1d_update(x, torch.zeros(2, 3, 3, dtype=torch.int64, device=DEV), w)
    with pytest.raises(ValueError, match="unknown activation"):
        cc.causal_conv1d_update(x, torch.zeros(2, 3, 3, device=DEV), w, activation="relu")


@pytest.mark.triton
def test_update_triton_needs_a_contiguous_state(rng):
    x, w = torch.zeros(2, 3, device=DEV), torch.zeros(3, 4, device=DEV)
    strided = torch.zeros(2, 3, 6, device=DEV)[..., 3:]
    with pytest.raises(ValueError, match="conv_state is updated in place and must be contiguous"):
        cc.causal_conv1d_update(x, strided, w, backend="triton")
    cc.causal_conv1d_update(x, strided, w, backend="torch")  # the torch path takes any layout
