"""The chunked torch backend against ``selective_scan_ref``: values, gradients, precision, memory."""

import numpy as np
import pytest
import sciamba.kernels._torch_scan as torch_scan
import torch
from sciamba.kernels import selective_scan, selective_scan_ref
from sciamba.kernels._interface import validate_scan_inputs

OPTIONS = ("D", "z", "bias", "softplus", "h0", "last")


def make_inputs(rng, b, d, L, N, B_form="variable", C_form=None, options=OPTIONS, G=1, dtype=torch.float64):
    """Random scan inputs as a kwargs dict; every tensor requires grad."""
    C_form = C_form or B_form

    def mat(form):
        shape = {"variable": (b, N, L), "grouped": (b, G, N, L), "invariant": (d, N)}[form]
        return rng.standard_normal(shape)

    t = lambda x, dt=dtype: torch.tensor(x, dtype=dt, requires_grad=True)
    kw = {
        "u": t(rng.standard_normal((b, d, L))),
        "delta": t(rng.standard_normal((b, d, L)) if "softplus" in options else rng.uniform(0.01, 1.5, (b, d, L))),
        "A": t(-rng.uniform(0.05, 3.0, (d, N)), torch.float64 if dtype == torch.float64 else torch.float32),
        "B": t(mat(B_form)),
        "C": t(mat(C_form)),
        "delta_softplus": "softplus" in options,
        "return_last_state": "last" in options,
    }
    w = torch.float64 if dtype == torch.float64 else torch.float32
    if "D" in options:
        kw["D"] = t(rng.standard_normal(d), w)
    if "z" in options:
        kw["z"] = t(rng.standard_normal((b, d, L)))
    if "bias" in options:
        kw["delta_bias"] = t(rng.uniform(-1, 1, d), w)
    if "h0" in options:
        kw["initial_state"] = t(rng.standard_normal((b, d, N)), w)
    return kw


def tensors(kw):
    return {k: v for k, v in kw.items() if isinstance(v, torch.Tensor)}


def run_and_grad(fn, kw, rng_weights):
    """Outputs and gradients of a random linear functional of (y, last_state)."""
    out = fn(**kw)
    y, h = out if isinstance(out, tuple) else (out, None)
    loss = (y.double() * rng_weights[0]).sum()
    if h is not None:
        loss = loss + (h.double() * rng_weights[1]).sum()
    names = list(tensors(kw))
    grads = torch.autograd.grad(loss, [kw[k] for k in names])
    return y, h, dict(zip(names, grads))


def fixed_chunks(monkeypatch, T):
    monkeypatch.setattr(torch_scan, "_chunk_len", lambda L, states, N: T)


def compare(kw, rng, rtol, atol):
    b, d, L = kw["u"].shape
    N = kw["A"].shape[1]
    weights = (torch.tensor(rng.standard_normal((b, d, L))), torch.tensor(rng.standard_normal((b, d, N))))
    y, h, g = run_and_grad(lambda **k: selective_scan(**k, backend="torch"), kw, weights)
    y_ref, h_ref, g_ref = run_and_grad(selective_scan_ref, kw, weights)
    assert y.dtype == kw["u"].dtype and y.shape == (b, d, L)
    torch.testing.assert_close(y, y_ref, rtol=rtol, atol=atol)
    if h is not None:
        torch.testing.assert_close(h, h_ref, rtol=rtol, atol=atol)
    for k in g_ref:
        torch.testing.assert_close(
            g[k], g_ref[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"grad of {k}: {m}"
        )


# Each row covers a different mix rather than the Cartesian product: every L
# of the issue, every N, odd dims, all B/C forms, every option on and off.
CASES = [
    # L, N, b, d, B form, C form, G, options
    (1, 4, 2, 3, "variable", None, 1, OPTIONS),
    (2, 1, 1, 5, "grouped", None, 5, ("z", "last")),
    (3, 16, 2, 6, "invariant", "grouped", 3, ("D", "bias", "softplus")),
    (17, 64, 1, 3, "variable", "invariant", 1, ("h0", "last", "D")),
    (64, 4, 3, 10, "grouped", "variable", 2, OPTIONS),
    (257, 16, 2, 7, "variable", None, 1, ("softplus", "bias", "z")),
    (1000, 1, 2, 9, "invariant", None, 1, ("h0", "last", "D", "z")),
    (4099, 4, 1, 6, "grouped", "invariant", 3, OPTIONS),
]


@pytest.mark.parametrize("L, N, b, d, B_form, C_form, G, options", CASES)
def test_torch_matches_reference_float64(rng, L, N, b, d, B_form, C_form, G, options):
    kw = make_inputs(rng, b, d, L, N, B_form, C_form, options, G)
    compare(kw, rng, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "chunk_len, sweep, segment", [(1, 8, None), (5, 1, None), (16, 8, 40), (24, 4, None), (64, 1, 100), (7, 2, 1)]
)
def test_chunking_sweep_and_segments_are_invisible(rng, monkeypatch, chunk_len, sweep, segment):
    """Ragged chunks, every sweep depth, the plain loop and state-passing segments all agree."""
    b, d = 2, 6
    monkeypatch.setattr(torch_scan, "_SWEEP_BLOCK", sweep)
    if segment is not None:  # segments of about `segment` steps, a multiple of the chunk length
        monkeypatch.setattr(torch_scan, "_SEGMENT_ELEMS", segment * b * d)
    fixed_chunks(monkeypatch, chunk_len)
    kw = make_inputs(rng, b, d, 203, 3, "grouped", "variable", OPTIONS, 2)
    compare(kw, rng, rtol=1e-10, atol=1e-10)


def test_segments_without_grad_write_in_place(rng, monkeypatch):
    monkeypatch.setattr(torch_scan, "_SEGMENT_ELEMS", 50 * 3 * 4)
    kw = make_inputs(rng, 3, 4, 333, 5, "invariant", "grouped", OPTIONS, 2, dtype=torch.float32)
    flat = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y, h = selective_scan(**flat, backend="torch")
    y64, h64 = selective_scan_ref(**{k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in flat.items()})
    assert not y.requires_grad and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5 * y64.abs().max().item())
    torch.testing.assert_close(h.double(), h64, rtol=1e-5, atol=1e-5 * h64.abs().max().item())


def test_default_chunking_on_large_states(rng):
    """States large enough that the chunk length and sweep block take other values."""
    kw = make_inputs(rng, 4, 130, 100, 32, "variable", None, ("D", "softplus", "h0", "last"))
    T = torch_scan._chunk_len(100, 4 * 130 * 32, 32)
    assert 32 <= T < 100 and torch_scan._block(T, 4 * 130 * 32) == 1
    compare(kw, rng, rtol=1e-10, atol=1e-10)


def test_gradcheck_float64(rng, monkeypatch):
    fixed_chunks(monkeypatch, 4)
    kw = make_inputs(rng, 1, 4, 11, 3, "grouped", "invariant", OPTIONS, 2)
    names = list(tensors(kw))
    flags = {k: v for k, v in kw.items() if not isinstance(v, torch.Tensor)}

    def f(*args):
        return selective_scan(**dict(zip(names, args)), **flags, backend="torch")

    assert torch.autograd.gradcheck(f, [kw[k] for k in names])


def test_gradcheck_time_invariant_without_state(rng, monkeypatch):
    fixed_chunks(monkeypatch, 4)
    kw = make_inputs(rng, 2, 3, 6, 2, "invariant", "variable", ("softplus",))
    names = list(tensors(kw))

    def f(*args):
        return selective_scan(**dict(zip(names, args)), delta_softplus=True, backend="torch")

    assert torch.autograd.gradcheck(f, [kw[k] for k in names])


def test_float32_close_to_float64_reference(rng):
    """fp32 far inside mamba_ssm's tolerances (rtol 6e-4, atol 2e-3)."""
    kw32 = make_inputs(rng, 2, 12, 700, 16, "grouped", "variable", OPTIONS, 4, dtype=torch.float32)
    kw64 = {k: (v.detach().double().requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in kw32.items()}
    b, d, L = kw32["u"].shape
    weights = (torch.tensor(rng.standard_normal((b, d, L))), torch.tensor(rng.standard_normal((b, d, 16))))
    y, h, g = run_and_grad(lambda **k: selective_scan(**k, backend="torch"), kw32, weights)
    y64, h64, g64 = run_and_grad(selective_scan_ref, kw64, weights)
    assert y.dtype == torch.float32 and h.dtype == torch.float32
    scale = y64.abs().max().item()
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(h.double(), h64, rtol=1e-5, atol=1e-5 * h64.abs().max().item())
    for k in g64:
        ref = g64[k]
        torch.testing.assert_close(g[k].double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item(), msg=k)


@pytest.mark.parametrize("dtype, rtol, atol", [(torch.bfloat16, 3e-2, 5e-2), (torch.float16, 3e-3, 5e-3)])
def test_half_precision_inputs(rng, dtype, rtol, atol):
    """bf16/fp16 activations: states in fp32, output rounded once (mamba_ssm tolerances)."""
    kw = make_inputs(rng, 2, 8, 300, 16, "variable", None, OPTIONS, dtype=dtype)
    y, h = selective_scan(**kw, backend="torch")
    kw64 = {k: (v.detach().double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y64, h64 = selective_scan_ref(**kw64)
    assert y.dtype == dtype and h.dtype == torch.float32
    torch.testing.assert_close(y.double(), y64, rtol=rtol, atol=atol)
    # The state never passes through `dtype`: float32 accuracy.
    torch.testing.assert_close(h.double(), h64, rtol=1e-5, atol=1e-5 * h64.abs().max().item())
    y.float().sum().backward()
    assert all(torch.isfinite(v.grad).all() for v in tensors(kw).values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_step_sizes_stay_finite(rng, dtype):
    """Δ log-uniform in [1e-6, 1e3], A down to -1e3: no overflow, no NaN, still exact."""
    b, d, L, N = 2, 5, 300, 8
    kw = make_inputs(rng, b, d, L, N, "variable", None, ("D", "h0", "last"), dtype=dtype)
    with torch.no_grad():
        kw["delta"].copy_(torch.tensor(10 ** rng.uniform(-6, 3, (b, d, L))))
        kw["A"].copy_(torch.tensor(-(10 ** rng.uniform(-3, 3, (d, N)))))
    weights = (torch.tensor(rng.standard_normal((b, d, L))), torch.tensor(rng.standard_normal((b, d, N))))
    y, h, g = run_and_grad(lambda **k: selective_scan(**k, backend="torch"), kw, weights)
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    assert all(torch.isfinite(v).all() for v in g.values())
    kw64 = {k: (v.detach().double().requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y64, _, g64 = run_and_grad(selective_scan_ref, kw64, weights)
    scale = y64.abs().max().item()
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y.double(), y64, rtol=tol, atol=tol * scale)
    for k in g64:
        torch.testing.assert_close(g[k].double(), g64[k], rtol=10 * tol, atol=10 * tol * g64[k].abs().max().item())


def test_backward_memory_is_per_chunk(rng):
    """Autograd never keeps a batch·dim·L·N tensor (saved tensors are inspected)."""
    b, d, L, N = 2, 4, 512, 64
    kw = make_inputs(rng, b, d, L, N, "variable", None, OPTIONS, dtype=torch.float32)
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, h = selective_scan(**kw, backend="torch")
    full = b * d * L * N
    largest_input = b * max(d, N) * L
    assert max(sizes) <= largest_input, f"a saved tensor has {max(sizes)} elements; the full state has {full}"
    (y.sum() + h.sum()).backward()


def test_forward_peak_memory_is_per_chunk(rng, monkeypatch):
    """The forward allocates chunk buffers of T·b·dim·N, never L·b·dim·N."""
    b, d, L, N = 2, 8, 2000, 16
    kw = make_inputs(rng, b, d, L, N, "variable", None, (), dtype=torch.float32)
    biggest = []
    real_empty = torch.Tensor.new_empty

    def spy(self, *size, **k):
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        biggest.append(int(np.prod(shape)))
        return real_empty(self, shape, **k)

    monkeypatch.setattr(torch.Tensor, "new_empty", spy)
    with torch.no_grad():
        y = selective_scan(**tensors(kw), backend="torch")
    T = torch_scan._chunk_len(L, b * d * N, N)
    biggest.remove(y.numel())  # the output itself
    assert T < L and max(biggest) <= (T + 1) * b * d * N


def test_non_contiguous_inputs(rng):
    kw = make_inputs(rng, 3, 4, 50, 5, "variable", None, OPTIONS)
    flat = tensors(kw)
    # Same values, transposed storage.
    nc = {k: v.detach().mT.contiguous().mT if v.dim() >= 2 else v.detach() for k, v in flat.items()}
    assert not nc["u"].is_contiguous()
    flags = {k: v for k, v in kw.items() if not isinstance(v, torch.Tensor)}
    y1, h1 = selective_scan(**nc, **flags, backend="torch")
    y2, h2 = selective_scan_ref(**{k: v.detach() for k, v in flat.items()}, **flags)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h1, h2, rtol=1e-10, atol=1e-10)


def test_backend_passes_validated_inputs(rng):
    """``selective_scan_torch`` itself accepts the normalized inputs directly."""
    kw = make_inputs(rng, 1, 2, 9, 3, "variable", None, ())
    x = validate_scan_inputs(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"])
    assert x.B.shape == (1, 1, 3, 9)
    y = torch_scan.selective_scan_torch(*x[:5], None, None, None, False, False, None)
    torch.testing.assert_close(y, selective_scan_ref(**tensors(kw)), rtol=1e-12, atol=1e-12)


def test_partial_requires_grad(rng):
    """Only some inputs track gradients (e.g. frozen A and B): the others stay None."""
    kw = make_inputs(rng, 2, 3, 40, 4, "variable", None, ("D", "last"))
    for k in ("A", "B", "D", "delta"):
        kw[k] = kw[k].detach()
    y, h = selective_scan(**kw, backend="torch")
    (y.sum() + h.sum()).backward()
    assert kw["A"].grad is None and kw["B"].grad is None
    kw_ref = {k: (v.detach().clone().requires_grad_() if k in ("u", "C") else v) for k, v in kw.items()}
    y3, h3 = selective_scan_ref(**kw_ref)
    (y3.sum() + h3.sum()).backward()
    torch.testing.assert_close(kw["u"].grad, kw_ref["u"].grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(kw["C"].grad, kw_ref["C"].grad, rtol=1e-10, atol=1e-10)
