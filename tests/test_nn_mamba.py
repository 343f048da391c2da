"""Mamba block and stack: reference pipeline, streaming, chunking, irregular time, padding, LTI limit."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sciamba import kernels
from sciamba.kernels import available_backends, selective_scan_ref
from sciamba.nn import Mamba, MambaBlock, MambaState
from sciamba.nn._mamba import selective_ssm
from sciamba.ssm import LTISSM


def _seed(rng) -> None:
    torch.manual_seed(int(rng.integers(2**31)))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _reference_block(
    block: MambaBlock, x: torch.Tensor, gaps: torch.Tensor | None = None, detach: bool = True
) -> torch.Tensor:
    """The block written out in float64 from its weights, scanned by selective_scan_ref.

    Independent of the module's own code path: explicit zero-padded convolution
    loop, softplus(dt) * gaps given to the plain sequential reference scan.
    """
    f = (lambda t: t.detach().double()) if detach else (lambda t: t.double())  # noqa: E731
    x = x.double()
    b, L, _ = x.shape
    E, N, R, k = block.d_inner, block.d_state, block.dt_rank, block.d_conv
    xz = x @ f(block.in_proj.weight).T  # (b L 2E)
    if block.in_proj.bias is not None:
        xz = xz + f(block.in_proj.bias)
    xi, z = xz[..., :E], xz[..., E:]
    if gaps is not None:
        xi = xi * (gaps.double() != 0)[..., None]
    w = f(block.conv1d.weight)[:, 0, :]  # (E k)
    xp = torch.cat([torch.zeros(b, k - 1, E, dtype=torch.float64), xi], dim=1)  # (b L+k-1 E)
    conv = sum(xp[:, j : j + L] * w[:, j] for j in range(k)) + f(block.conv1d.bias)  # (b L E)
    u = conv * torch.sigmoid(conv)
    dbl = u @ f(block.x_proj.weight).T  # (b L R+2N)
    dt, Bm, Cm = dbl[..., :R], dbl[..., R : R + N], dbl[..., R + N :]
    delta = F.softplus(dt @ f(block.dt_proj.weight).T + f(block.dt_proj.bias))  # (b L E)
    if gaps is not None:
        delta = delta * gaps.double()[..., None]
    A = -torch.exp(f(block.A_log))
    y = selective_scan_ref(
        u.transpose(1, 2), delta.transpose(1, 2), A, Bm.transpose(1, 2), Cm.transpose(1, 2),
        f(block.D), z.transpose(1, 2),
    )  # (b E L)
    out = y.transpose(1, 2) @ f(block.out_proj.weight).T  # (b L d)
    if block.out_proj.bias is not None:
        out = out + f(block.out_proj.bias)
    if gaps is not None:
        out = out * (gaps.double() != 0)[..., None]
    return out


def _gaps(rng, b: int, L: int) -> torch.Tensor:
    # Irregular sampling: mostly ~1, some long gaps (missing samples).
    g = rng.exponential(1.0, size=(b, L)) + 0.05
    g[rng.random((b, L)) < 0.1] *= 7
    return torch.as_tensor(g, dtype=torch.float32)


def _perturb(block: MambaBlock) -> None:
    """Non-trivial biases, D and decays, so that every term of the block is exercised."""
    with torch.no_grad():
        for p in (block.in_proj.bias, block.out_proj.bias, block.conv1d.bias, block.D):
            if p is not None:
                p.normal_()
        block.A_log.add_(torch.randn_like(block.A_log) * 0.3)


@pytest.mark.parametrize("L, bias", [(1, False), (3, True), (37, False), (37, True)])
def test_block_matches_reference_pipeline(rng, L, bias):
    _seed(rng)
    block = MambaBlock(12, d_state=5, d_conv=4, expand=2, dt_rank=3, bias=bias)
    _perturb(block)
    x = torch.randn(3, L, 12)
    assert _rel(block(x).double(), _reference_block(block, x)) < 1e-5


def test_gaps_equal_reference_scan_with_scaled_delta(rng):
    """Δ_t -> gaps_t · Δ_t, checked against selective_scan_ref with Δ multiplied by the gaps."""
    _seed(rng)
    block = MambaBlock(10, d_state=4, dt_min=0.1, dt_max=1.0)
    x = torch.randn(2, 41, 10)
    gaps = _gaps(rng, 2, 41)
    y = block(x, gaps)
    assert _rel(y.double(), _reference_block(block, x, gaps)) < 1e-5
    # and the gaps matter: a regular grid gives something else (far above float32 noise;
    # the skip term D·u, which gaps do not touch, can dominate: 1.3% of draws fall under 1e-2)
    assert _rel(block(x), y) > 1e-3
    # all-ones gaps are the regular grid
    assert _rel(block(x, torch.ones(2, 41)), block(x)) < 1e-6


@pytest.mark.parametrize(
    "backend", sorted({"triton" if b.startswith("triton") else b for b in available_backends("cpu").available})
)
def test_gradients_match_reference(rng, backend):
    """Backward through each kernel backend (scan and causal conv) equals autograd through the float64 reference."""
    _seed(rng)
    block = MambaBlock(8, d_state=3, d_conv=3, backend=backend)
    with torch.no_grad():
        block.conv1d.bias.normal_()
    x = torch.randn(2, 19, 8, requires_grad=True)
    gaps = _gaps(rng, 2, 19)
    w = torch.randn(2, 19, 8)
    (block(x, gaps) * w).sum().backward()
    ref = copy.deepcopy(block).double()
    xr = x.detach().double().requires_grad_()
    (_reference_block(ref, xr, gaps, detach=False) * w.double()).sum().backward()
    assert _rel(x.grad.double(), xr.grad) < 1e-5
    for (name, p), pr in zip(block.named_parameters(), ref.parameters()):
        assert _rel(p.grad.double(), pr.grad) < 1e-4, name


def test_gradcheck_float64(rng):
    _seed(rng)
    block = MambaBlock(4, d_state=2, d_conv=2, expand=1).double()
    x = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    gaps = torch.as_tensor(rng.uniform(0.5, 2.0, (1, 5)))
    assert torch.autograd.gradcheck(lambda t: block(t, gaps), (x,))


@pytest.mark.parametrize("L", [1, 2, 3, 5, 17])
@pytest.mark.parametrize("with_gaps", [False, True])
def test_step_equals_parallel(rng, L, with_gaps):
    """O(1) recurrent steps reproduce the parallel forward, also for L < d_conv."""
    _seed(rng)
    net = Mamba(16, 2, d_state=4, d_conv=4, bias=with_gaps).eval()
    x = torch.randn(3, L, 16)
    gaps = _gaps(rng, 3, L) if with_gaps else None
    with torch.no_grad():
        y = net(x, gaps)
        state = net.allocate_state(3)
        nbytes = state.nbytes()
        ys = []
        for t in range(L):
            y_t, state = net.step(x[:, t], state, None if gaps is None else gaps[:, t])
            ys.append(y_t)
    assert _rel(torch.stack(ys, 1), y) < 1e-5
    assert state.nbytes() == nbytes  # the state does not grow with t


@pytest.mark.triton
@pytest.mark.parametrize("with_gaps", [False, True])
def test_triton_step_equals_parallel(rng, with_gaps):
    """The streaming step through the Triton kernels (the convolution's and the scan's steps)
    reproduces the parallel forward of the torch backend, from a prefilled state."""
    _seed(rng)
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # compiled, or interpreted on the CPU
    ref = Mamba(16, 2, d_state=4, d_conv=4, bias=with_gaps, backend="torch").eval().to(dev)
    net = Mamba(16, 2, d_state=4, d_conv=4, bias=with_gaps, backend="triton").eval().to(dev)
    net.load_state_dict(ref.state_dict())
    x = torch.randn(3, 11, 16, device=dev)
    gaps = _gaps(rng, 3, 11).to(dev) if with_gaps else None
    with torch.no_grad():
        y = ref(x, gaps)
        _, state = ref(x[:, :5], None if gaps is None else gaps[:, :5], return_state=True)
        ys = [net.step(x[:, t], state, None if gaps is None else gaps[:, t])[0] for t in range(5, 11)]
    assert _rel(torch.stack(ys, 1), y[:, 5:]) < 1e-5


@pytest.mark.parametrize("splits", [[1, 1, 1, 1], [2, 9, 1, 20], [17, 15], [3, 0, 29]])
def test_chunked_forward_equals_one_pass(rng, splits):
    _seed(rng)
    net = Mamba(16, 3, d_state=6, d_conv=4)
    L = sum(splits)
    x = torch.randn(2, L, 16)
    gaps = _gaps(rng, 2, L)
    y = net(x, gaps)
    state, outs, t = None, [], 0
    for n in splits:
        if n == 0:
            continue
        out, state = net(x[:, t : t + n], gaps[:, t : t + n], state=state, return_state=True)
        outs.append(out)
        t += n
    assert isinstance(state, MambaState)
    assert _rel(torch.cat(outs, 1), y) < 1e-5


def test_chunked_forward_backpropagates_through_state(rng):
    _seed(rng)
    net = Mamba(8, 1, d_state=3)
    x = torch.randn(1, 12, 8)
    w = torch.randn(1, 12, 8)  # a generic loss (sum(y**2) is flat under the final RMSNorm)
    (net(x) * w).sum().backward()
    g_full = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    y1, s = net(x[:, :5], return_state=True)
    y2 = net(x[:, 5:], state=s)
    ((y1 * w[:, :5]).sum() + (y2 * w[:, 5:]).sum()).backward()
    for p, g in zip(net.parameters(), g_full):
        assert _rel(p.grad, g) < 1e-5


@pytest.mark.parametrize("bidirectional", [False, True])
def test_left_padding_invariance(rng, bidirectional):
    """Series of unequal lengths batched by left padding (x = 0, gap = 0) give their own outputs."""
    _seed(rng)
    net = Mamba(12, 2, d_state=4, bidirectional=bidirectional)
    with torch.no_grad():
        for block in net.blocks():  # biases everywhere, so masking is really needed
            block.conv1d.bias.normal_()
    lengths = [23, 9, 1]
    Lmax = max(lengths)
    xs = [torch.randn(1, n, 12) for n in lengths]
    gs = [_gaps(rng, 1, n) for n in lengths]
    X = torch.zeros(len(lengths), Lmax, 12)
    G = torch.zeros(len(lengths), Lmax)
    for i, (x, g) in enumerate(zip(xs, gs)):
        X[i, Lmax - x.shape[1] :] = x[0]
        G[i, Lmax - x.shape[1] :] = g[0]
    Y = net(X, G)
    for i, (x, g) in enumerate(zip(xs, gs)):
        n = x.shape[1]
        assert _rel(Y[i, Lmax - n :], net(x, g)[0]) < 1e-5
        assert torch.all(Y[i, : Lmax - n] == 0)  # padded positions stay exactly zero


def test_bidirectional_is_not_causal_and_causal_is(rng):
    _seed(rng)
    x = torch.randn(1, 20, 8)
    x2 = x.clone()
    x2[:, 15:] += 1.0
    uni, bi = Mamba(8, 2, d_state=4), Mamba(8, 2, d_state=4, bidirectional=True)
    assert torch.equal(uni(x)[:, :15], uni(x2)[:, :15])
    assert not torch.allclose(bi(x)[:, :15], bi(x2)[:, :15])
    # reverse direction: running it on the flipped input swaps the roles of the blocks
    assert len(bi.blocks()) == 4 and len(uni.blocks()) == 2


def test_bidirectional_reverse_direction_uses_shifted_gaps(rng):
    """Going backwards, the step into t spans gaps[t+1]: check against two reference blocks."""
    _seed(rng)
    net = Mamba(6, 1, d_state=3, bidirectional=True)
    layer = net.layers[0]
    x = torch.randn(2, 13, 6)
    g = _gaps(rng, 2, 13)
    hn = layer.norm(x)
    g_rev = torch.cat([g[:, 1:], g[:, -1:]], 1).flip(1)
    fwd = _reference_block(layer.mixer, hn, g)
    rev = _reference_block(layer.mixer_rev, hn.flip(1), g_rev).flip(1)
    expected = net.norm_f((x.double() + fwd + rev).float())
    assert _rel(net(x, g), expected) < 1e-5


def _lti_errors(delta: float, L: int, rng_seed: int) -> tuple[float, float]:
    """Max |Mamba - exact ZOH| and its relative size, input-independent Δ, B, C, irregular gaps."""
    gen = np.random.default_rng(rng_seed)
    N = 4
    A = -np.linspace(0.5, 3.0, N)  # (N,) real, stable
    # Same-sign B, C and a positive input: the leading error term sum_n C_n A_n B_n g^2 u
    # cannot cancel by accident, so the observed order is the true one.
    Bv, Cv = np.ones(N), gen.uniform(0.5, 1.5, N)
    t = np.linspace(0, 1, L)
    u = 1.5 + np.sin(2 * np.pi * 3 * t) + 0.3 * gen.standard_normal(L)  # (L,)
    gaps = gen.uniform(0.3, 3.0, L)  # (L,) irregular, in units of the nominal step
    f64 = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    # Mamba's selective SSM, LTI: constant raw dt with softplus(dt) = delta, B and C fixed.
    dt_raw = math.log(math.expm1(delta))
    y_mamba, _ = selective_ssm(
        f64(u)[None, None], torch.full((1, 1, L), dt_raw, dtype=torch.float64), f64(A)[None],
        f64(Bv)[None], f64(Cv)[None], gaps=f64(gaps)[None], backend="torch",
    )  # (1 1 L)
    # Exact zero-order hold with the same per-step intervals, from sciamba.ssm.
    layer = LTISSM(np.diag(A), Bv[:, None], Cv[None], np.zeros((1, 1)), dt=1.0, dtype=torch.float64)
    y_zoh = layer(f64(u)[None, None], dt=f64(delta * gaps))  # (1 1 L)
    # Mamba reads h_t (state after u_t); SciPy's timing reads x[t+1] at t + 1.
    diff = (y_mamba[0, 0, :-1] - y_zoh[0, 0, 1:]).abs().max().item()
    return diff, diff / y_zoh.abs().max().item()


def test_lti_limit_converges_to_exact_zoh_as_delta_squared(rng):
    """Fixed number of steps: the Euler input matrix ΔB vs exact ZOH costs O(Δ²)."""
    seed = int(rng.integers(2**31))
    # Asymptotic regime: total decay over the window, Δ·L·gap·|A|, well below 1.
    deltas = np.array([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    errs = np.array([_lti_errors(d, 40, seed)[0] for d in deltas])
    slope = np.polyfit(np.log(deltas), np.log(errs), 1)[0]
    assert 1.9 < slope < 2.1, (slope, errs)


def test_lti_limit_relative_error_first_order_over_fixed_time(rng):
    """Fixed physical time span (L ∝ 1/Δ): relative error falls as Δ (documented)."""
    seed = int(rng.integers(2**31))
    deltas = np.array([0.02, 0.01, 0.005])
    rel = np.array([_lti_errors(d, int(round(2.0 / d)), seed)[1] for d in deltas])
    slope = np.polyfit(np.log(deltas), np.log(rel), 1)[0]
    assert 0.85 < slope < 1.2, (slope, rel)
    assert rel[-1] < 0.05


def test_init_follows_the_paper(rng):
    _seed(rng)
    block = MambaBlock(40, d_state=7, dt_min=0.002, dt_max=0.05)
    assert block.dt_rank == math.ceil(40 / 16)
    assert block.d_inner == 80
    A = -torch.exp(block.A_log)
    assert torch.allclose(A, -torch.arange(1, 8, dtype=torch.float32).expand(80, 7))
    assert torch.all(block.D == 1)
    dt0 = F.softplus(block.dt_proj.bias)
    assert torch.all(dt0 >= 0.002 * (1 - 1e-5)) and torch.all(dt0 <= 0.05 * (1 + 1e-5))
    bound = block.dt_rank**-0.5
    assert block.dt_proj.weight.abs().max() <= bound
    assert block.conv1d.weight.shape == (80, 1, 4)
    assert block.in_proj.bias is None and block.out_proj.bias is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtypes(rng, dtype):
    _seed(rng)
    net = Mamba(8, 2, d_state=4).to(dtype)
    x = torch.randn(2, 7, 8, dtype=dtype)
    y, state = net(x, return_state=True)
    assert y.shape == x.shape and y.dtype == dtype
    assert state.layers[0].conv.shape == (2, 16, 3)
    assert state.layers[0].ssm.shape == (2, 16, 4)
    y_t, _ = net.step(x[:, 0], net.allocate_state(2))
    assert y_t.shape == (2, 8) and y_t.dtype == dtype


def test_backend_argument_reaches_the_kernel(rng, monkeypatch):
    _seed(rng)
    net = Mamba(8, 2, d_state=4, backend="torch")
    assert net.backend == "torch"
    seen = []
    real = kernels.selective_scan

    def spy(*args, **kwargs):
        seen.append(kwargs["backend"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "selective_scan", spy)
    net(torch.randn(1, 6, 8))
    assert seen == ["torch", "torch"]
    real_step = kernels.selective_state_update

    def spy_step(*args, **kwargs):
        seen.append(("step", kwargs["backend"]))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(kernels, "selective_state_update", spy_step)
    with torch.no_grad():
        net.step(torch.randn(1, 8), net.allocate_state(1))
    assert seen[2:] == [("step", "torch"), ("step", "torch")]
    with pytest.raises(ValueError, match="backend"):
        Mamba(8, 1, backend="cuda")


@pytest.mark.parametrize(
    "backend", sorted({"triton" if b.startswith("triton") else b for b in available_backends("cpu").available})
)
def test_every_available_backend_gives_the_same_model(rng, backend):
    _seed(rng)
    net = Mamba(8, 1, d_state=4, backend="torch")
    other = Mamba(8, 1, d_state=4, backend=backend)
    other.load_state_dict(net.state_dict())
    x = torch.randn(2, 9, 8)
    g = _gaps(rng, 2, 9)
    assert _rel(other(x, g), net(x, g)) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_gpu(rng):
    _seed(rng)
    net = Mamba(64, 2).cuda()
    x = torch.randn(2, 300, 64, device="cuda")
    y32 = net(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y16 = net(x)
    y16.float().sum().backward()
    assert torch.isfinite(y16.float()).all()
    assert _rel(y16.float(), y32) < 5e-2
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_bf16_autocast_on_cpu(rng):
    """The block casts its input and input projection once to autocast's dtype: same model,
    bf16 accuracy, and gradients for every parameter (the input weight through its split)."""
    _seed(rng)
    net = Mamba(16, 2, d_state=4, backend="torch", bidirectional=True)
    x = torch.randn(2, 37, 16)
    y32 = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = net(x)
    assert _rel(y16.float(), y32) < 5e-2
    y16.float().square().sum().backward()
    grads16 = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    y32.square().sum().backward()
    for n, p in net.named_parameters():
        assert torch.isfinite(grads16[n]).all(), n
        assert _rel(grads16[n], p.grad) < 0.1, n
    # as autocast itself, the block never lowers float64
    net64, x64 = net.double(), x.double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y64 = net64(x64)
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64, net64(x64), rtol=1e-12, atol=1e-12)


def test_step_under_autocast(rng):
    """Mamba.step under bf16 autocast runs (mixed product/convolution dtypes) and stays close."""
    _seed(rng)
    net = Mamba(16, 2, d_state=4).eval()
    x = torch.randn(2, 7, 16)
    s32, s16 = net.allocate_state(2), net.allocate_state(2)
    with torch.no_grad():
        y32 = torch.stack([net.step(x[:, t], s32)[0] for t in range(7)], 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = torch.stack([net.step(x[:, t], s16)[0] for t in range(7)], 1)
    assert torch.isfinite(y16.float()).all() and _rel(y16.float(), y32) < 5e-2


def test_bad_inputs(rng):
    net = Mamba(8, 1, d_state=4)
    with pytest.raises(ValueError, match=r"\(batch, L, d_model=8\)"):
        net(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"\(batch, L, d_model=8\)"):
        net(torch.randn(5, 8))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.ones(1, 5, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        net(np.zeros((1, 5, 8)))
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"gaps must have shape \(batch, L\)"):
        net(x, torch.ones(2, 4))
    with pytest.raises(ValueError, match=">= 0"):
        net(x, -torch.ones(2, 5))
    with pytest.raises(ValueError, match="finite"):
        net(x, torch.full((2, 5), float("nan")))
    with pytest.raises(ValueError, match="batch"):
        net.step(x[:, 0], net.allocate_state(3))
    with pytest.raises(ValueError, match="x_t of shape"):
        net.step(x, net.allocate_state(2))
    with pytest.raises(ValueError, match="gap must be"):
        net.step(x[:, 0], net.allocate_state(2), gap=torch.ones(2, 1))
    with pytest.raises(ValueError, match="MambaState"):
        net(x, state="nope")
    bi = Mamba(8, 1, bidirectional=True)
    for call in (lambda: bi.allocate_state(2), lambda: bi(x, return_state=True)):
        with pytest.raises(ValueError, match="bidirectional"):
            call()
    with pytest.raises(ValueError, match="dt_min"):
        MambaBlock(8, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match="d_state"):
        MambaBlock(8, d_state=0)
    with pytest.raises(ValueError, match="dt_rank"):
        MambaBlock(8, dt_rank="big")
    with pytest.raises(ValueError, match="dropout"):
        Mamba(8, 1, dropout=1.5)


# ------------------------------------------------------------------ fused training node
_TRITON_CPU = any(b.startswith("triton") for b in available_backends("cpu").available)
needs_triton_cpu = pytest.mark.skipif(not _TRITON_CPU, reason="needs Triton's interpreter (TRITON_INTERPRET=1)")


def _fused(y: torch.Tensor) -> bool:
    return y.grad_fn is not None and "MambaInner" in type(y.grad_fn).__name__


@needs_triton_cpu
@pytest.mark.parametrize("bias, d_conv, expand, d_state, dt_rank", [
    (False, 3, 2, 3, 2), (True, 3, 2, 3, 2),
    (False, 1, 1, 1, 1),  # no convolution history, one state, rank one: the degenerate sizes
])
def test_fused_training_node_matches_reference_gradients(rng, bias, d_conv, expand, d_state, dt_rank):
    """The one-node training path: output and every gradient equal autograd through the float64 reference."""
    _seed(rng)
    b, L = int(rng.integers(1, 4)), int(rng.integers(2, 24))
    block = MambaBlock(6, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, bias=bias,
                       backend="triton").double()
    _perturb(block)
    x = torch.randn(b, L, 6, dtype=torch.float64, requires_grad=True)
    y = block(x)
    assert _fused(y)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *block.parameters()], g)
    ref = _reference_block(block, x, detach=False)
    want = torch.autograd.grad(ref, [x, *block.parameters()], g)
    assert _rel(y, ref) < 1e-12
    for name, a, w in zip(["x"] + [n for n, _ in block.named_parameters()], got, want):
        assert a.dtype == w.dtype and a.shape == w.shape, name
        assert _rel(a, w) < 1e-10, name


@needs_triton_cpu
@pytest.mark.parametrize("R", [3, 30], ids=["ranges-chained-in-kernel", "ranges-chain-kernel"])
@pytest.mark.parametrize("gapped", [False, True])
def test_fused_training_node_with_time_ranges(rng, monkeypatch, R, gapped):
    """The fused node with time split into parallel ranges (A given as A_log to the range kernels;
    with gaps, step sizes formed before the scan): output and gradients equal autograd through
    the float64 reference."""
    from sciamba.kernels import _triton_scan as ts

    monkeypatch.setattr(ts, "_CONFIG_OVERRIDE", ts._Config(BD=4, T_fwd=2, T_bwd=2, SEG=2, num_warps=1, R=R))
    chained = []
    real_chain = ts._chain
    monkeypatch.setattr(ts, "_chain", lambda *a, **k: (chained.append(k["reverse"]), real_chain(*a, **k))[1])
    _seed(rng)
    block = MambaBlock(6, d_state=3, d_conv=3, dt_rank=2, backend="triton").double()
    _perturb(block)
    x = torch.randn(2, 41, 6, dtype=torch.float64, requires_grad=True)  # 21 segments: R = min(R, 21)
    gaps = None
    if gapped:
        gaps = torch.rand(2, 41, dtype=torch.float64) * 2
        gaps[1, :9] = 0.0
    y = block(x, gaps)
    assert _fused(y)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *block.parameters()], g)
    assert (True in chained) == (R > ts._CHAIN_IN_KERNEL)  # the backward's chaining path taken
    ref = _reference_block(block, x, gaps, detach=False)
    want = torch.autograd.grad(ref, [x, *block.parameters()], g)
    assert _rel(y, ref) < 1e-12
    for name, a, w in zip(["x"] + [n for n, _ in block.named_parameters()], got, want):
        assert _rel(a, w) < 1e-10, name


@needs_triton_cpu
def test_fused_training_node_in_a_bidirectional_stack(rng):
    """A float32 bidirectional stack trained through the fused node equals the composite torch path."""
    _seed(rng)
    net = Mamba(8, 2, d_state=3, d_conv=2, bidirectional=True, backend="triton")
    ref = Mamba(8, 2, d_state=3, d_conv=2, bidirectional=True, backend="torch")
    ref.load_state_dict(net.state_dict())
    x = torch.randn(2, 13, 8)  # an input that needs no gradient: the parameters still do
    w = torch.randn(2, 13, 8)
    (net(x) * w).sum().backward()
    (ref(x) * w).sum().backward()
    for (name, p), pr in zip(net.named_parameters(), ref.parameters()):
        assert _rel(p.grad, pr.grad) < 1e-5, name


@needs_triton_cpu
@pytest.mark.parametrize("bias, large_dt", [(False, False), (True, False), (False, True)])
def test_fused_training_node_with_gaps_and_padding(rng, bias, large_dt):
    """Irregular gaps, left padding and a zero gap inside a series through the fused node: output
    and every gradient equal autograd through the float64 reference, and padded positions output
    zeros. ``large_dt``: some channels' raw step sizes above the softplus threshold (20)."""
    _seed(rng)
    b, L = 3, int(rng.integers(8, 23))
    block = MambaBlock(6, d_state=3, d_conv=3, dt_rank=2, bias=bias, backend="triton").double()
    _perturb(block)
    if large_dt:
        with torch.no_grad():
            block.dt_proj.bias[::2] += 25.0
    x = torch.randn(b, L, 6, dtype=torch.float64, requires_grad=True)
    gaps = torch.rand(b, L, dtype=torch.float64) * 3  # irregular sampling
    gaps[0, :4] = 0.0  # series 0 left-padded by 4, series 1 by L - 1 (one real sample)
    gaps[1, : L - 1] = 0.0
    gaps[2, L // 2] = 0.0  # a zero gap inside series 2: its input is masked too
    y = block(x, gaps)
    assert _fused(y)
    assert torch.all(y[0, :4] == 0) and torch.all(y[1, : L - 1] == 0)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *block.parameters()], g)
    ref = _reference_block(block, x, gaps, detach=False)
    want = torch.autograd.grad(ref, [x, *block.parameters()], g)
    assert _rel(y, ref) < 1e-12
    for name, a, w in zip(["x"] + [n for n, _ in block.named_parameters()], got, want):
        assert a.dtype == w.dtype and a.shape == w.shape, name
        assert _rel(a, w) < 1e-10, name
    assert torch.all(got[0][0, :4] == 0) and torch.all(got[0][2, L // 2] == 0)  # masked inputs: no gradient


@needs_triton_cpu
def test_fused_training_node_in_a_bidirectional_stack_with_gaps(rng):
    """A float32 bidirectional stack with gaps and padding (the estimators' case): the fused
    node's parameter gradients equal the composite torch path's."""
    _seed(rng)
    net = Mamba(8, 2, d_state=3, d_conv=2, bidirectional=True, backend="triton")
    ref = Mamba(8, 2, d_state=3, d_conv=2, bidirectional=True, backend="torch")
    ref.load_state_dict(net.state_dict())
    x = torch.randn(2, 13, 8)
    gaps = torch.rand(2, 13) + 0.5
    gaps[1, :5] = 0.0
    w = torch.randn(2, 13, 8)
    (net(x, gaps) * w).sum().backward()
    (ref(x, gaps) * w).sum().backward()
    for (name, p), pr in zip(net.named_parameters(), ref.parameters()):
        assert _rel(p.grad, pr.grad) < 1e-5, name


@needs_triton_cpu
def test_fused_training_node_only_where_it_applies(rng):
    """Streaming state, gaps that need a gradient, inference and the torch backend keep the composite path."""
    _seed(rng)
    block = MambaBlock(6, d_state=2, d_conv=2, backend="triton")
    x = torch.randn(1, 5, 6, requires_grad=True)
    assert _fused(block(x))
    assert _fused(block(x, torch.ones(1, 5)))
    gaps = torch.ones(1, 5, requires_grad=True)
    y = block(x, gaps)
    assert not _fused(y)
    assert torch.autograd.grad(y.sum(), gaps)[0].shape == (1, 5)  # the composite path differentiates them
    assert not _fused(block(x, return_state=True)[0])
    assert not _fused(block(x, state=block.allocate_state(1)))
    with torch.no_grad():
        assert block(x).grad_fn is None
    torch_block = MambaBlock(6, d_state=2, d_conv=2, backend="torch")
    assert not _fused(torch_block(x))
    # once differentiable, like the kernels it calls
    y = block(x)
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(y.sum(), x, create_graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("bias, gapped", [(False, False), (True, False), (False, True), (True, True)])
def test_fused_training_node_on_cuda(rng, autocast, bias, gapped):
    """Compiled kernels, float32 and bf16 autocast: the fused node agrees with the composite path
    (with projection biases too: under autocast both add them in the products' dtype; and with
    irregular gaps and left padding)."""
    from sciamba.nn import _mamba

    _seed(rng)
    net = Mamba(64, 2, bias=bias).cuda()
    x = torch.randn(2, 300, 64, device="cuda", requires_grad=True)
    g = torch.randn(2, 300, 64, device="cuda")
    gaps = None
    if gapped:
        gaps = torch.rand(2, 300, device="cuda") * 2
        gaps[1, :57] = 0.0
    out = {}
    for fused in (True, False):
        _mamba.FUSED_TRAINING = fused
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                y = net(x, gaps)
            out[fused] = (y.float(), torch.autograd.grad(y.float(), [x, *net.parameters()], g))
        finally:
            _mamba.FUSED_TRAINING = True
    tol = 2e-2 if autocast else 1e-5
    assert _rel(out[True][0], out[False][0]) < tol / 10
    for a, b in zip(out[True][1], out[False][1]):
        assert _rel(a, b) < tol
