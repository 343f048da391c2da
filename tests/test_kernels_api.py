"""Public API of ``sciamba.kernels``: dispatch, validation errors, streaming steps, padding."""

import doctest
import importlib
import importlib.machinery
import importlib.util
import sys
import types

import pytest
import sciamba.kernels as K
import torch
from sciamba.kernels import available_backends, selective_scan, selective_scan_ref, selective_state_update


def small(rng, b=2, d=4, L=6, N=3, dtype=torch.float64):
    t = lambda *s: torch.tensor(rng.standard_normal(s), dtype=dtype)
    return {
        "u": t(b, d, L),
        "delta": torch.tensor(rng.uniform(0.05, 1.0, (b, d, L)), dtype=dtype),
        "A": -torch.tensor(rng.uniform(0.1, 2.0, (d, N)), dtype=dtype),
        "B": t(b, N, L),
        "C": t(b, N, L),
    }


# ---------------------------------------------------------------- backends


def test_available_backends_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    report = available_backends("cpu")
    assert report.device == "cpu" and report.auto == "torch"
    assert report.available == ("torch",) and "torch" in report
    assert "triton" in report.unavailable and "CUDA" in report.unavailable["triton"]
    has_kernels = importlib.util.find_spec("sciamba.kernels._triton_scan") is not None
    has_triton = importlib.util.find_spec("triton") is not None
    why = report.unavailable["triton-interpret"]
    if not has_triton:
        assert "pip install triton" in why
    elif not has_kernels:
        assert "_triton_scan" in why
    else:
        assert "set TRITON_INTERPRET=1" in why


def test_available_backends_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    report = available_backends("cpu")
    assert report.auto == "torch"  # the interpreter is for testing, never picked by "auto"
    has_kernels = importlib.util.find_spec("sciamba.kernels._triton_scan") is not None
    has_triton = importlib.util.find_spec("triton") is not None
    assert ("triton-interpret" in report.available) == (has_kernels and has_triton)


@pytest.mark.parametrize("device", ["tpu", 3.5])
def test_available_backends_bad_device(device):
    with pytest.raises(ValueError, match="not a torch device"):
        available_backends(device)


def test_available_backends_default_device():
    report = available_backends()
    assert report.device.startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert report.available[-1] == "torch"


@pytest.mark.parametrize("interpret", ["0", "1"])
@pytest.mark.parametrize("device", ["cpu", "cuda", "meta"])
def test_auto_resolution_matches_report(monkeypatch, device, interpret):
    """The fast dispatch path and available_backends() agree on what "auto" means."""
    from sciamba.kernels._backends import resolve_backend

    monkeypatch.setenv("TRITON_INTERPRET", interpret)
    assert resolve_backend("auto", torch.device(device)) == available_backends(device).auto
    if device == "cuda":
        has = importlib.util.find_spec("sciamba.kernels._triton_scan") is not None
        assert available_backends(device).auto == ("triton" if has and interpret == "0" else "torch")


@pytest.mark.parametrize("backend", ["cuda", "Torch", "", None, 3])
def test_unknown_backend(rng, backend):
    with pytest.raises(ValueError, match="unknown backend"):
        selective_scan(**small(rng), backend=backend)


def test_triton_on_cpu_without_interpreter_raises(rng, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend='triton' cannot run on cpu.*backend='torch'"):
        selective_scan(**small(rng), backend="triton")


def _fake_triton_module(monkeypatch, calls):
    """Install a stand-in ``sciamba.kernels._triton_scan`` that records its arguments."""
    mod = types.ModuleType("sciamba.kernels._triton_scan")
    mod.__spec__ = importlib.machinery.ModuleSpec("sciamba.kernels._triton_scan", None)

    def selective_scan_triton(*args):
        calls.append(args)
        u, delta, A, B, C, D, z, delta_bias, softplus, last, h0 = args
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, softplus, last, initial_state=h0)

    mod.selective_scan_triton = selective_scan_triton
    monkeypatch.setitem(sys.modules, "sciamba.kernels._triton_scan", mod)
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def test_triton_dispatch_contract(rng, monkeypatch):
    """The Triton backend gets validated, normalized, positional inputs."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton not installed")
    calls = []
    _fake_triton_module(monkeypatch, calls)
    x = small(rng, b=2, d=6, L=9, N=4, dtype=torch.bfloat16)
    u_nc = x["u"].mT.contiguous().mT  # non-contiguous
    Bg = torch.randn(2, 3, 4, 9, dtype=torch.bfloat16)
    Ci = torch.randn(6, 4, dtype=torch.float64)  # time-invariant, cast to float32
    D = torch.randn(6, dtype=torch.float64)
    y, h = selective_scan(
        u_nc, x["delta"], x["A"], Bg, Ci, D=D, delta_softplus=1, return_last_state=True,
        initial_state=torch.randn(2, 6, 4), backend="triton",
    )
    (args,) = calls
    u, delta, A, B, C, D_, z, bias, softplus, last, h0 = args
    assert u.is_contiguous() and u.dtype == torch.bfloat16 and delta.dtype == torch.bfloat16
    assert A.dtype == torch.float32 and D_.dtype == torch.float32 and h0.dtype == torch.float32
    assert B.shape == (2, 3, 4, 9) and B.is_contiguous() and C.shape == (6, 4) and C.dtype == torch.float32
    assert z is None and bias is None and softplus is True and last is True
    assert y.dtype == torch.bfloat16 and h.shape == (2, 6, 4)
    # The 3-D (b, N, L) form reaches the kernel as G = 1.
    calls.clear()
    selective_scan(**small(rng, d=6, N=4), backend="triton")
    assert calls[0][3].shape[1] == 1 and calls[0][3].dim() == 4


def test_triton_import_failure_is_explained(rng, monkeypatch):
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton not installed")
    _fake_triton_module(monkeypatch, [])
    del sys.modules["sciamba.kernels._triton_scan"].selective_scan_triton
    with pytest.raises(RuntimeError, match="failed to import its kernels.*backend='torch'"):
        selective_scan(**small(rng), backend="triton")


def test_auto_uses_torch_on_cpu(rng, monkeypatch):
    calls = []
    import sciamba.kernels._torch_scan as ts

    real = ts.selective_scan_torch
    monkeypatch.setattr(ts, "selective_scan_torch", lambda *a: calls.append(a) or real(*a))
    x = small(rng)
    y = selective_scan(**x)
    assert len(calls) == 1
    torch.testing.assert_close(y, selective_scan_ref(**x), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- validation errors


def _bad(rng, **change):
    x = small(rng, b=2, d=6, L=5, N=3)
    x.update(change)
    return x


@pytest.mark.parametrize(
    "change, exc, match",
    [
        ({"u": torch.zeros(2, 6)}, ValueError, r"u must have shape \(batch, dim, L\)"),
        ({"u": torch.zeros(2, 6, 5, dtype=torch.int64)}, TypeError, "u must be a floating-point"),
        ({"u": [[1.0]]}, TypeError, "u must be a torch.Tensor"),
        ({"u": torch.zeros(2, 6, 0, dtype=torch.float64)}, ValueError, "L = 0"),
        ({"delta": torch.zeros(2, 6, 4, dtype=torch.float64)}, ValueError, "delta must have shape"),
        ({"delta": torch.zeros(2, 6, 5, dtype=torch.float32)}, TypeError, "delta has dtype torch.float32 but u has"),
        ({"z": torch.zeros(2, 6, 5, dtype=torch.float16)}, TypeError, "z has dtype"),
        ({"z": torch.zeros(2, 5, 5, dtype=torch.float64)}, ValueError, "z must have shape"),
        ({"A": torch.zeros(5, 3, dtype=torch.float64)}, ValueError, r"A must have shape \(dim, N\)"),
        ({"A": torch.zeros(6, 3, dtype=torch.complex64)}, TypeError, "complex"),
        ({"A": torch.zeros(6, 0, dtype=torch.float64)}, ValueError, "N = 0"),
        ({"B": torch.zeros(2, 4, 5, dtype=torch.float64)}, ValueError, "B must have one of the shapes"),
        # The message names the accepted shapes and the shape given (not the (b, 1, N, L) view of it).
        ({"B": torch.zeros(2, 3, 4, dtype=torch.float64)}, ValueError,
         r"\(dim, N\) = \(6, 3\), \(batch, N, L\) = \(2, 3, 5\) or \(batch, G, N, L\); got \(2, 3, 4\)$"),
        ({"B": torch.zeros(2, 4, 3, 5, dtype=torch.float64)}, ValueError, "dim=6 is not divisible by G"),
        ({"C": torch.zeros(5, 3, dtype=torch.float64)}, ValueError, "C must have one of the shapes"),
        ({"C": torch.zeros(2, 3, 5, 1, 1, dtype=torch.float64)}, ValueError, "C must have one of the shapes"),
        ({"C": torch.zeros(2, 3, 5, dtype=torch.int32)}, TypeError, "C must be a floating-point"),
        ({"D": torch.zeros(5, dtype=torch.float64)}, ValueError, r"D must have shape \(dim,\)"),
        ({"delta_bias": torch.zeros(6, 1)}, ValueError, "delta_bias must have shape"),
        ({"initial_state": torch.zeros(2, 6, 4)}, ValueError, r"initial_state must have shape \(batch, dim, N\)"),
        ({"u": torch.zeros(2, 6, 5, dtype=torch.float64, device="meta")}, ValueError, "on meta but u is on|is on cpu"),
    ],
)
def test_scan_errors(rng, change, exc, match):
    for fn in (lambda **k: selective_scan(**k, backend="torch"), selective_scan_ref):
        with pytest.raises(exc, match=match):
            fn(**_bad(rng, **change))


def test_reference_rejects_backend_argument(rng):
    with pytest.raises(TypeError):
        selective_scan_ref(**small(rng), backend="torch")


# ---------------------------------------------------------------- streaming steps


@pytest.mark.parametrize(
    "B_form, C_form, options",
    [
        ("variable", "variable", ()),
        ("grouped", "invariant", ("D", "z", "bias", "softplus")),
        ("invariant", "grouped", ("D", "softplus", "h0")),
    ],
)
def test_state_update_steps_equal_scan(rng, B_form, C_form, options):
    b, d, L, N, G = 3, 6, 11, 4, 2
    t = lambda *s: torch.tensor(rng.standard_normal(s))
    mats = {"variable": lambda: t(b, N, L), "grouped": lambda: t(b, G, N, L), "invariant": lambda: t(d, N)}
    u, delta, A = t(b, d, L), t(b, d, L), -torch.tensor(rng.uniform(0.1, 2, (d, N)))
    B, C = mats[B_form](), mats[C_form]()
    D = t(d) if "D" in options else None
    z = t(b, d, L) if "z" in options else None
    bias = t(d) if "bias" in options else None
    h0 = t(b, d, N) if "h0" in options else None
    sp = "softplus" in options
    if not sp:
        delta = delta.abs()
    y, h = selective_scan(u, delta, A, B, C, D, z, bias, sp, True, initial_state=h0, backend="torch")
    state = torch.zeros(b, d, N, dtype=torch.float64) if h0 is None else h0.clone()
    at = lambda M, i: M if M.dim() == 2 else M[..., i]
    steps = [
        selective_state_update(
            state, u[..., i], delta[..., i], A, at(B, i), at(C, i), D=D,
            z=None if z is None else z[..., i], dt_bias=bias, dt_softplus=sp,
        )
        for i in range(L)
    ]
    torch.testing.assert_close(torch.stack(steps, -1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, h, rtol=1e-12, atol=1e-12)


def test_state_update_in_place_and_dtypes(rng):
    b, d, N = 2, 5, 3
    state = torch.zeros(b, d, N)
    ptr = state.data_ptr()
    x = torch.randn(b, d, dtype=torch.bfloat16)
    y = selective_state_update(state, x, torch.rand(b, d, dtype=torch.bfloat16), -torch.rand(d, N),
                               torch.randn(b, N), torch.randn(b, N))
    assert y.dtype == torch.bfloat16 and y.shape == (b, d)
    assert state.data_ptr() == ptr and state.abs().sum() > 0 and state.dtype == torch.float32


@pytest.mark.parametrize(
    "change, exc, match",
    [
        ({"state": torch.zeros(2, 6)}, ValueError, r"state must have shape \(batch, dim, N\)"),
        ({"state": torch.zeros(2, 6, 3, dtype=torch.bfloat16)}, TypeError, "state must be float32 or float64"),
        ({"x": torch.zeros(2, 5)}, ValueError, r"x must have shape \(batch, dim\)"),
        ({"dt": torch.zeros(2, 6, dtype=torch.float64)}, TypeError, "dt has dtype"),
        ({"A": torch.zeros(6, 4)}, ValueError, r"A must have shape \(dim, N\)"),
        ({"B": torch.zeros(2, 4)}, ValueError, "B must have one of the shapes"),
        ({"B": torch.zeros(2, 4, 3)}, ValueError, "dim=6 is not divisible by G"),
        ({"C": torch.zeros(3, 3)}, ValueError, "C must have one of the shapes"),
        ({"z": torch.zeros(2, 6, 1)}, ValueError, "z must have shape"),
        ({"dt_bias": torch.zeros(5)}, ValueError, "dt_bias must have shape"),
    ],
)
def test_state_update_errors(change, exc, match):
    args = {
        "state": torch.zeros(2, 6, 3), "x": torch.zeros(2, 6), "dt": torch.zeros(2, 6), "A": torch.zeros(6, 3),
        "B": torch.zeros(2, 3), "C": torch.zeros(6, 3),
    }
    args.update(change)
    with pytest.raises(exc, match=match):
        selective_state_update(**args)


# ---------------------------------------------------------------- Δ = 0 and left padding


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_zero_step_leaves_state_unchanged(rng, backend):
    fn = selective_scan_ref if backend == "reference" else lambda *a, **k: selective_scan(*a, **k, backend="torch")
    x = small(rng, L=7)
    x["delta"] = torch.zeros_like(x["delta"])
    h0 = torch.tensor(rng.standard_normal((2, 4, 3)))
    _, h = fn(**x, return_last_state=True, initial_state=h0)
    torch.testing.assert_close(h, h0, rtol=0, atol=0)


@pytest.mark.parametrize("softplus", [False, True])
def test_left_padding_batches_unequal_lengths(rng, softplus):
    """Series of lengths 9 and 5 batched with Δ = 0 on the left give each series' own result."""
    d, N, lengths, L = 3, 4, (9, 5), 9
    A = -torch.tensor(rng.uniform(0.1, 2, (d, N)))
    D, bias = torch.tensor(rng.standard_normal(d)), torch.tensor(rng.standard_normal(d)) if softplus else None
    series = []
    for n in lengths:
        u, B, C, z = (torch.tensor(rng.standard_normal(s)) for s in ((1, d, n), (1, N, n), (1, N, n), (1, d, n)))
        delta = torch.tensor(rng.standard_normal((1, d, n)) if softplus else rng.uniform(0.1, 1, (1, d, n)))
        series.append((u, delta, B, C, z))
    # Δ = softplus(-1e4 + bias) underflows to exactly 0; without softplus delta = 0.
    pad_delta = -1e4 if softplus else 0.0
    padded = []
    for k, (u, delta, B, C, z) in enumerate(series):
        p = L - lengths[k]
        fill = lambda x, v=0.0, p=p: torch.nn.functional.pad(x, (p, 0), value=v)
        padded.append((fill(u, 123.0), fill(delta, pad_delta), fill(B, 7.0), fill(C), fill(z)))
    batch = [torch.cat(parts) for parts in zip(*padded)]
    y, h = selective_scan(batch[0], batch[1], A, batch[2], batch[3], D, batch[4], bias, softplus, True,
                          backend="torch")
    for k, (u, delta, B, C, z) in enumerate(series):
        y_k, h_k = selective_scan_ref(u, delta, A, B, C, D, z, bias, softplus, True)
        torch.testing.assert_close(y[k : k + 1, :, L - lengths[k] :], y_k, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h[k : k + 1], h_k, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- docs


@pytest.mark.parametrize(
    "module",
    ["sciamba.kernels", "sciamba.kernels._interface", "sciamba.kernels._reference",
     "sciamba.kernels._state_update", "sciamba.kernels._backends"],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_names_documented():
    for name in K.__all__:
        obj = getattr(K, name)
        assert obj.__doc__ and "Examples" in obj.__doc__, name


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_higher_derivatives_are_refused_not_wrong(backend):
    """The fused backward passes record no graph: create_graph=True raises instead
    of returning second derivatives that silently miss terms."""
    g = torch.Generator().manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # Triton: compiled, or interpreted on CPU

    def rand(*shape, f=torch.randn):
        return f(*shape, generator=g, dtype=torch.float64).to(dev)

    b, d, L, N = 1, 3, 6, 2
    u = rand(b, d, L).requires_grad_(True)
    delta, A = rand(b, d, L, f=torch.rand), -rand(d, N, f=torch.rand)
    B, C = rand(b, N, L), rand(b, N, L)
    y = selective_scan(u * u, delta, A, B, C, backend=backend)
    with pytest.raises(RuntimeError, match="differentiable once.*selective_scan_ref"):
        torch.autograd.grad(y.sum(), u, create_graph=True)
    (gu,) = torch.autograd.grad(selective_scan(u, delta, A, B, C, backend=backend).sum(), u)
    (gr,) = torch.autograd.grad(selective_scan_ref(u, delta, A, B, C).sum(), u)
    torch.testing.assert_close(gu, gr)  # first derivatives unaffected


def test_softplus_grad_is_the_derivative_of_the_step_size(rng):
    """softplus_grad (the fused block's written-out backward) against autograd through
    discretize_delta, on both sides of the threshold and at it, in float64."""
    from sciamba.kernels._math import SOFTPLUS_THRESHOLD, discretize_delta, softplus_grad

    x = torch.from_numpy(rng.uniform(-40, 40, 997))
    x = torch.cat([x, torch.tensor([-30.0, 0.0, SOFTPLUS_THRESHOLD, SOFTPLUS_THRESHOLD + 1e-9, 1e4])])
    x.requires_grad_(True)
    (want,) = torch.autograd.grad(discretize_delta(x, None, True).sum(), x)
    torch.testing.assert_close(softplus_grad(x.detach()), want, rtol=1e-15, atol=0)
