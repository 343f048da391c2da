"""Triton selective-scan kernels against the float64 reference.

On a machine without CUDA these run under Triton's interpreter
(``TRITON_INTERPRET=1``, set in conftest), so sizes are small; the same tests
run compiled on a GPU. Tile sizes are forced small through
``_triton_scan._CONFIG_OVERRIDE`` so that short sequences still cross chunk,
segment and parallel-range boundaries, and channel blocks straddle B/C groups.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from sciamba.kernels import selective_scan_ref
from sciamba.kernels import _triton_scan as ts
from sciamba.kernels._triton_scan import _sigmoid, _softplus, _softplus_grad

pytestmark = pytest.mark.triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"
ARGS = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"]


def _t(rng, shape, dtype=torch.float64, scale=1.0, shift=0.0):
    return torch.tensor(rng.standard_normal(shape) * scale + shift, dtype=dtype, device=DEV)


def make_case(rng, b, d, L, N, *, G=1, varB=True, varC=True, D=True, z=True, bias=True,
              h0=True, dtype=torch.float64):
    """Random inputs in `dtype` (A, D, bias, h0, B, C in float32 unless float64)."""
    wdt = torch.float64 if dtype == torch.float64 else torch.float32
    ins = {
        "u": _t(rng, (b, d, L), dtype),
        "delta": _t(rng, (b, d, L), dtype, 0.7),
        "A": -torch.tensor(rng.uniform(0.05, 3.0, (d, N)), dtype=wdt, device=DEV),
        "B": _t(rng, (b, G, N, L), wdt) if varB else _t(rng, (d, N), wdt),
        "C": _t(rng, (b, G, N, L), wdt) if varC else _t(rng, (d, N), wdt),
        "D": _t(rng, (d,), wdt) if D else None,
        "z": _t(rng, (b, d, L), dtype) if z else None,
        "delta_bias": _t(rng, (d,), wdt, 0.3) if bias else None,
        "initial_state": _t(rng, (b, d, N), wdt) if h0 else None,
    }
    return ins


def run_both(ins, softplus, *, grads=True, dtype_out=None, use_last=True):
    """(y, last, grads) from the Triton kernels and from the float64 reference.

    With ``use_last=False`` the loss ignores the last state (no gradient flows into it).
    """
    live = [k for k in ARGS if ins[k] is not None]
    tri = {k: (ins[k].clone().requires_grad_(grads) if ins[k] is not None else None) for k in ARGS}
    ref = {k: (ins[k].detach().double().clone().requires_grad_(grads) if ins[k] is not None
               else None) for k in ARGS}
    y, last = ts.selective_scan_triton(
        tri["u"], tri["delta"], tri["A"], tri["B"], tri["C"], tri["D"], tri["z"],
        tri["delta_bias"], softplus, True, tri["initial_state"])
    yr, lr = selective_scan_ref(
        ref["u"], ref["delta"], ref["A"], ref["B"], ref["C"], ref["D"], ref["z"],
        ref["delta_bias"], softplus, True, initial_state=ref["initial_state"])
    out = {"y": (y, yr), "last": (last, lr)}
    if grads:
        gen = torch.Generator(device=DEV).manual_seed(int(torch.randint(0, 2**31, (1,))))
        gy = torch.randn(yr.shape, generator=gen, device=DEV, dtype=torch.float64)
        gl = torch.randn(lr.shape, generator=gen, device=DEV, dtype=torch.float64)
        w = 1.0 if use_last else 0.0
        loss = (y.double() * gy).sum() + ((last.double() * gl).sum() if use_last else 0.0)
        g = torch.autograd.grad(loss, [tri[k] for k in live])
        gr = torch.autograd.grad((yr * gy).sum() + w * (lr * gl).sum(), [ref[k] for k in live])
        for k, a, r in zip(live, g, gr):
            out["d" + k] = (a, r)
    return out


def assert_close(out, rtol, atol):
    for name, (a, r) in out.items():
        assert a.shape == r.shape, name
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a.double(), r.double(), rtol=rtol, atol=atol, msg=name)


@pytest.fixture
def tiles(monkeypatch):
    """Force tile sizes (and the number of parallel time ranges)."""

    def set_(BD=4, T_fwd=4, T_bwd=2, SEG=8, R=None, num_warps=1, BD_bwd=None, T_state=None,
             T_ranged=None):
        monkeypatch.setattr(ts, "_CONFIG_OVERRIDE", ts._Config(
            BD=BD, T_fwd=T_fwd, T_bwd=T_bwd, SEG=SEG, num_warps=num_warps, R=R,
            BD_bwd=BD_bwd, T_state=T_state, T_ranged=T_ranged))

    return set_


# (b, d, L, N, G, varB, varC, D, z, bias, h0, softplus, tiles)
CASES = [
    # every optional input, grouped B/C whose groups straddle channel blocks,
    # three parallel time ranges of several segments and chunks
    (2, 6, 45, 3, 3, True, True, True, True, True, True, True, dict(BD=4, R=3)),
    # the same with other chunk lengths in the ranges' state pass and main pass
    (1, 6, 45, 3, 1, True, True, True, True, True, True, True, dict(BD=4, R=3, T_state=8,
                                                                      T_ranged=2)),
    # nothing optional; L = 1
    (1, 3, 1, 4, 1, True, True, False, False, False, False, False, dict(BD=4)),
    (2, 5, 2, 4, 1, True, True, True, False, True, False, True, dict(BD=4)),
    (1, 7, 3, 1, 1, True, True, False, True, False, True, False, dict(BD=4)),
    # time-invariant B and C, initial state, odd dim, forward and backward tiles differ
    (2, 5, 17, 4, 1, False, False, True, True, True, True, True, dict(BD=4, R=2, BD_bwd=8)),
    # variable B with time-invariant C (and the reverse)
    (1, 9, 17, 2, 1, True, False, True, False, True, True, True, dict(BD=4)),
    (1, 4, 16, 2, 2, False, True, False, True, False, False, False, dict(BD=2)),
    # N = 16 (the Mamba default) with one group over two channel blocks
    (1, 9, 64, 16, 1, True, True, True, True, True, True, True, dict(BD=8, T_fwd=8, T_bwd=4,
                                                                       SEG=16, R=2)),
    # a checkpoint at every backward chunk (SEG = T_bwd: no recomputation pass), with ranges,
    # and two chunks per segment (the pass recomputes one)
    (2, 6, 45, 3, 1, True, True, True, True, True, True, True, dict(BD=4, T_fwd=2, T_bwd=4,
                                                                      SEG=4, R=3)),
    (1, 5, 23, 4, 1, False, True, True, True, True, True, True, dict(BD=4, T_fwd=4, T_bwd=4,
                                                                       SEG=8)),
    # N = 64, a channel block of 16 partly masked
    (1, 5, 9, 64, 1, True, True, True, True, True, True, True, dict(BD=16, T_fwd=2, T_bwd=2)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "b{}d{}L{}N{}G{}".format(*c[:5]))
def test_float64_forward_and_gradients(case, rng, tiles):
    b, d, L, N, G, varB, varC, D, z, bias, h0, softplus, cfg = case
    tiles(**cfg)
    ins = make_case(rng, b, d, L, N, G=G, varB=varB, varC=varC, D=D, z=z, bias=bias, h0=h0)
    assert_close(run_both(ins, softplus), rtol=1e-10, atol=1e-11)


def test_ranges_without_a_last_state_gradient(rng, tiles):
    """R > 1 and no gradient into the last state: the reverse chain starts from zero."""
    tiles(BD=4, T_fwd=4, T_bwd=2, SEG=8, R=3)
    ins = make_case(rng, 2, 5, 41, 3)
    assert_close(run_both(ins, True, use_last=False), rtol=1e-10, atol=1e-11)


def test_checkpoint_every_chunk_with_time_invariant_matrices(rng, tiles):
    """SEG == T_bwd (no recompute pass) with time-invariant B and C, ranges and h0."""
    tiles(BD=4, T_fwd=2, T_bwd=4, SEG=4, R=3)
    ins = make_case(rng, 2, 6, 29, 3, varB=False, varC=False)
    assert_close(run_both(ins, True), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("backward_too", [False, True])
def test_pinned_layouts_give_the_same_results(rng, tiles, monkeypatch, backward_too):
    """The kernels with ``PIN`` (the per-step tiles summed over a unit axis, as compiled on a GPU)
    against the reference: forward and, for half-precision inputs on a GPU, backward too."""
    monkeypatch.setattr(ts, "_pinned", lambda u, backward: backward_too or not backward)
    tiles(BD=4, T_fwd=4, T_bwd=2, SEG=8, R=2)
    ins = make_case(rng, 2, 5, 37, 3, h0=True)
    assert_close(run_both(ins, True), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("V, T_fwd, L, N, R, pin", [(1, 4, 45, 3, 2, True), (2, 4, 48, 3, None, False),
                                                     (2, 8, 48, 1, 2, True), (4, 8, 37, 16, None, False),
                                                     (4, 8, 64, 16, None, True)])
def test_split_output_tiles_give_the_same_results(rng, tiles, monkeypatch, V, T_fwd, L, N, R, pin):
    """The forward's half-precision path (the sum over states split between the lanes of a pair, y
    stored as (BD, 2, Q, V) tiles, full chunks without time masks when T divides L, and with ``pin``
    the per-step tiles pinned, as compiled on a GPU) on float64 inputs against the reference:
    Q = T / 2V of 1 and 2, ragged and whole chunks, N = 1."""
    monkeypatch.setattr(ts, "_split_store", lambda u, T: min(V, T // 2))
    monkeypatch.setattr(ts, "_pinned", lambda u, backward: pin and not backward)
    tiles(BD=4, T_fwd=T_fwd, T_bwd=2, SEG=16, R=R)
    ins = make_case(rng, 2, 5, L, N, h0=True)
    assert_close(run_both(ins, True), rtol=1e-10, atol=1e-11)


def test_tile_sizes_must_divide_the_segment():
    with pytest.raises(ValueError, match="multiple of every chunk"):
        ts._Config(BD=4, T_fwd=4, T_bwd=8, SEG=4, num_warps=1)
    with pytest.raises(ValueError, match="multiple of every chunk"):
        ts._Config(BD=4, T_fwd=4, T_bwd=4, SEG=8, num_warps=1, T_state=16)


def test_long_sequence_float64(rng, tiles):
    """L = 257: many segments, ranges and a partial last chunk, default tiles."""
    tiles(BD=8, T_fwd=8, T_bwd=4, SEG=32, R=3, T_state=16)
    ins = make_case(rng, 1, 3, 257, 4)
    assert_close(run_both(ins, True), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("b, d, L", [
    (1, 19, 20),  # few channels: 8-channel programs on a GPU
    pytest.param(3, 1400, 40, marks=pytest.mark.skipif(DEV == "cpu", reason="the interpreter's tiles here")),
    pytest.param(8, 1100, 40, marks=pytest.mark.skipif(DEV == "cpu", reason="the interpreter's tiles here")),
])
def test_default_config_runs(rng, b, d, L):
    """The tiles chosen without an override (interpreter, or a GPU's 8- and 16-channel ones) are right too."""
    ins = make_case(rng, b, d, L, 16, G=1)
    assert_close(run_both(ins, True), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("N", [1, 3, 16, 64, 256])
def test_gpu_tile_choice(N, monkeypatch):
    """GPU tiles: 8 channels a program, 16 when 8-channel programs would take more than one wave of
    8 warps a multiprocessor (132 multiprocessors assumed for CPU tensors); pipelining depth 4 for
    4-byte inputs, 3 for half precision; the backward's tiles never change."""
    monkeypatch.setattr(ts, "_interpret_enabled", lambda: False)  # the compiled-kernel choice, on any machine
    NP = 1 << (N - 1).bit_length()
    T = max(2, min(32, 256 // NP))
    for dtype, b, d, wide in [(torch.bfloat16, 8, 1536, True), (torch.float16, 2, 5000, True),
                              (torch.float32, 8, 512, False), (torch.float64, 1, 256, False),
                              (torch.float32, 8, 1536, True), (torch.float32, 1, 4097, False),
                              (torch.bfloat16, 1, 8 * 8 * 132, False), (torch.bfloat16, 1, 8 * 8 * 132 + 1, True)]:
        cfg = ts._config_for(torch.empty(b, d, 1, dtype=dtype), N)
        assert cfg.BD == (16 if wide else 8), (dtype, b, d)
        assert cfg.stages == (4 if dtype.itemsize >= 4 else 3), (dtype, b, d)
        assert cfg.T_fwd == T and cfg.SEG % T == 0
        assert (cfg.BD_bwd, cfg.T_bwd, cfg.SEG) == (8, min(16, max(2, min(32, 128 // NP))), 128)
    override = ts._Config(BD=4, T_fwd=4, T_bwd=4, SEG=8, num_warps=1)
    monkeypatch.setattr(ts, "_CONFIG_OVERRIDE", override)
    assert ts._config_for(torch.empty(8, 1536, 1), N) is override


def test_fast_math_levels(monkeypatch):
    """Compiled CUDA kernels: softplus by a polynomial and approximate division for float32 math (1),
    plus the flushing exp for 2-byte inputs (2); exact math in float64, on the CPU, in the
    interpreter, or when turned off."""
    from types import SimpleNamespace

    def fake(dtype, device="cuda"):  # what _fast_math reads of u, on any machine
        return SimpleNamespace(device=torch.device(device), element_size=lambda: dtype.itemsize)

    monkeypatch.setattr(ts, "_interpret_enabled", lambda: False)
    assert ts._fast_math(fake(torch.bfloat16), torch.float32) == 2
    assert ts._fast_math(fake(torch.float16), torch.float32) == 2
    assert ts._fast_math(fake(torch.float32), torch.float32) == 1
    assert ts._fast_math(fake(torch.float64), torch.float64) == 0
    assert ts._fast_math(fake(torch.bfloat16, "cpu"), torch.float32) == 0
    monkeypatch.setattr(ts, "_FAST", False)
    assert ts._fast_math(fake(torch.bfloat16), torch.float32) == 0
    monkeypatch.setattr(ts, "_FAST", True)
    monkeypatch.setattr(ts, "_interpret_enabled", lambda: True)
    assert ts._fast_math(fake(torch.bfloat16), torch.float32) == 0


@triton.jit
def _elementwise(x_ptr, o_ptr, n, WHICH: tl.constexpr, FAST: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = tl.load(x_ptr + i, mask=m, other=0.0)
    if WHICH == 0:
        r = _softplus(x, FAST)
    elif WHICH == 1:
        r = _softplus_grad(x, FAST)
    else:
        r = _sigmoid(x, FAST)
    tl.store(o_ptr + i, r, mask=m)


@pytest.mark.parametrize("fast", [0, 1, 2])
@pytest.mark.parametrize("which", ["softplus", "softplus_grad", "sigmoid"])
def test_elementwise_helpers_are_float32_accurate(which, fast):
    """softplus (Δ), its derivative and the gate's sigmoid at every fast-math level against
    float64, over the whole range of normal results: within a few ulp plus the rounding of
    x log2(e) that any exp2-based exp carries (about |x| * 3e-8 relative). The MUFU log2's
    absolute error near 1 once made level 1's softplus 0.2% off at x = -10."""
    if fast == 2 and DEV != "cuda":
        pytest.skip("level 2's MUFU approximations are inline PTX: compiled CUDA only")
    k = ["softplus", "softplus_grad", "sigmoid"].index(which)
    hi = 85.0 if which == "sigmoid" else 20.0
    x = torch.cat([torch.linspace(-85.0, hi, 400_001, device=DEV),
                   torch.tensor([-16.6, -10.0, -1e-3, 0.0, 19.99, 20.0], device=DEV)])
    out = torch.empty_like(x)
    _elementwise[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), WHICH=k, FAST=fast, BLOCK=1024)
    d = x.double()
    ref = {0: torch.where(d <= 20, torch.log1p(torch.exp(d)), d),
           1: torch.where(d <= 20, torch.sigmoid(d), torch.ones_like(d)),
           2: torch.sigmoid(d)}[k]
    rel = (out.double() - ref).abs() / ref.abs()
    bound = 2e-6 + 6e-8 * d.abs()
    worst = int(torch.argmax(rel / bound))
    assert (rel <= bound).all(), (x[worst].item(), out[worst].item(), ref[worst].item())
    big = torch.tensor([20.5, 100.0, float("inf"), -float("inf"), float("nan")], device=DEV)
    o = torch.empty_like(big)
    _elementwise[(1,)](big, o, big.numel(), WHICH=k, FAST=fast, BLOCK=1024)
    want = {0: [20.5, 100.0, float("inf"), 0.0], 1: [1.0, 1.0, 1.0, 0.0], 2: [1.0, 1.0, 1.0, 0.0]}[k]
    assert o[:4].tolist() == want
    if which != "softplus_grad":  # the derivative takes the x > 20 branch for a NaN (its Δ is NaN anyway)
        assert torch.isnan(o[4])


@pytest.mark.skipif(DEV != "cuda", reason="the MUFU approximations are inline PTX: compiled CUDA only")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_math_agrees_with_exact_math(dtype, rng, monkeypatch):
    """The compiled kernels with their fast math (level 1 float32, 2 half precision) against the
    same kernels with exact math on the same inputs: float32 results tight, half-precision
    outputs within one rounding. (Against the reference, bf16's tolerances would hide a
    per-step error of 1e-3 in an approximation.)"""
    ins = make_case(rng, 2, 67, 1000, 16, dtype=dtype)
    level = ts._fast_math(ins["u"], torch.float32)
    assert level == (2 if dtype == torch.bfloat16 else 1)
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)  # run_both draws the upstream gradients from torch's generator
    fast = run_both(ins, True)
    monkeypatch.setattr(ts, "_fast_math", lambda u, cdt: 0)
    torch.manual_seed(seed)
    exact = run_both(ins, True)
    for name in fast:
        a, e = fast[name][0], exact[name][0]
        if a.dtype == torch.float32:  # the state and the gradients of the float32 inputs
            torch.testing.assert_close(a, e, rtol=2e-5, atol=2e-5 * e.abs().max().item(), msg=name)
        else:  # rounded to bf16 once: the two may land on neighbouring values
            torch.testing.assert_close(a.float(), e.float(), rtol=1.6e-2, atol=1e-2 * e.abs().max().item(),
                                       msg=name)


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float32, 6e-5, 2e-4),
                                             (torch.bfloat16, 3e-2, 5e-2)])
def test_low_precision_inputs(dtype, rtol, atol, rng, tiles):
    """fp32 (ten times tighter than mamba_ssm's own test) and bf16 inputs."""
    tiles(BD=8, T_fwd=8, T_bwd=4, SEG=16, R=2)
    ins = make_case(rng, 2, 7, 40, 16, dtype=dtype)
    out = run_both(ins, True)
    y, yr = out.pop("y")
    assert y.dtype == dtype and out["last"][0].dtype == torch.float32
    # The reference ran on the same rounded inputs, in float64; y is rounded once.
    torch.testing.assert_close(y.double(), yr.to(dtype).double(), rtol=rtol, atol=atol)
    grad_tol = (rtol * 5, atol * 10) if dtype == torch.bfloat16 else (rtol, atol)
    for name, (a, r) in out.items():
        scale = r.abs().max().item() + 1.0
        assert torch.isfinite(a).all(), name
        assert (a.double() - r.double()).abs().max().item() <= grad_tol[1] * scale + \
            grad_tol[0] * r.abs().max().item(), name


def test_extreme_steps_stay_finite(rng, tiles):
    """Δ from 1e-6 to 1e3 and A down to -1e3: no NaN or inf, and still exact."""
    tiles(BD=4, T_fwd=4, T_bwd=2, SEG=8)
    b, d, L, N = 1, 5, 24, 4
    ins = make_case(rng, b, d, L, N, bias=False)
    ins["delta"] = torch.tensor(10 ** rng.uniform(-6, 3, (b, d, L)), dtype=torch.float64,
                                device=DEV)
    ins["A"] = -torch.tensor(10 ** rng.uniform(-3, 3, (d, N)), dtype=torch.float64, device=DEV)
    out = run_both(ins, False)
    for name, (a, _) in out.items():
        assert torch.isfinite(a).all(), name
    assert_close(out, rtol=1e-9, atol=1e-9)
    # softplus of huge arguments is the identity (threshold 20, as mamba_ssm)
    ins["delta"] = ins["delta"] * 1e3
    out = run_both(ins, True, grads=True)
    for name, (a, _) in out.items():
        assert torch.isfinite(a).all(), name


def test_ranges_agree_with_one_pass(rng, tiles):
    """Splitting time into parallel ranges gives the sequential result."""
    ins = make_case(rng, 1, 4, 50, 4)
    tiles(BD=4, SEG=8, R=1)
    y1, s1 = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], True, True,
                                      ins["initial_state"])
    tiles(BD=4, SEG=8, R=5)
    y5, s5 = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], True, True,
                                      ins["initial_state"])
    torch.testing.assert_close(y1, y5, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s1, s5, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_kernel", [False, True], ids=["chain-launch", "chain-in-main-kernel"])
@pytest.mark.parametrize("use_last", [True, False], ids=["dlast", "no-dlast"])
def test_backward_range_carries_both_ways(rng, tiles, monkeypatch, in_kernel, use_last):
    """The backward's range carries, chained by their own kernel (many ranges) or by each
    program of the main kernel (few ranges), give the reference's gradients."""
    monkeypatch.setattr(ts, "_CHAIN_IN_KERNEL", 16 if in_kernel else 1)
    chained = []
    real_chain = ts._chain
    monkeypatch.setattr(ts, "_chain", lambda *a, **k: (chained.append(k["reverse"]), real_chain(*a, **k))[1])
    tiles(BD=4, T_bwd=2, SEG=4, R=5)
    ins = make_case(rng, 2, 6, 37, 3)
    assert_close(run_both(ins, True, grads=True, use_last=use_last), rtol=1e-10, atol=1e-11)
    assert (True in chained) != in_kernel  # the backward chained by its own launch, or not


def test_a_log_input_and_caller_zeroed_buffers(rng, tiles):
    """``a_log=True`` (A given as log(-A), the Mamba block's A_log) gives the outputs of A =
    -exp(A_log) and the gradient of A_log (dA times A); ``zeroed`` buffers receive the
    per-channel gradients, and a wrong one is refused."""
    tiles(BD=4, T_bwd=2, SEG=4, R=3)
    ins = make_case(rng, 2, 6, 23, 3, h0=False)
    A_log = torch.log(-ins["A"])
    args = [ins[k] for k in ("u", "delta")]
    rest = [ins[k] for k in ("B", "C", "D", "z", "delta_bias")]
    cfg = ts._config_for(ins["u"], 3)
    outs = {}
    for name, A, kw in (("A", ins["A"], {}), ("A_log", A_log, dict(a_log=True))):
        pr = ts._problem(ins["u"], A, ins["B"], ins["C"], cfg)
        y, last, ck = ts._forward(*args, A, *rest, None, True, pr, save=True, **kw)
        prb = ts._problem(ins["u"], A, ins["B"], ins["C"], cfg, backward=True)
        gy = torch.ones_like(y)
        zeroed = ts._zeroed_views(dict(A=(6, 3), D=(6,), delta_bias=(6,)), y.device, A.dtype)
        g = ts._backward(gy, None, *args, A, *rest, None, True, ck, prb, zeroed=zeroed, **kw)
        assert g["A"] is zeroed["A"] and g["D"] is zeroed["D"]
        outs[name] = (y, last, g)
    (y, last, g), (y2, last2, g2) = outs["A"], outs["A_log"]
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last2, last, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2["A"], g["A"] * ins["A"], rtol=1e-10, atol=1e-12)
    for k in ("u", "delta", "B", "C", "D", "z", "delta_bias"):
        torch.testing.assert_close(g2[k], g[k], rtol=1e-10, atol=1e-12, msg=k)
    bad = ts._zeroed_views(dict(A=(6, 3), D=(5,), delta_bias=(6,)), y.device, A_log.dtype)
    with pytest.raises(ValueError, match="zeroed\\['D'\\] must be"):
        ts._backward(torch.ones_like(y), None, *args, A_log, *rest, None, True, ck, prb, zeroed=bad,
                     a_log=True)
    extra = ts._zeroed_views(dict(A=(6, 3), D=(6,), delta_bias=(6,), B=(6, 3)), y.device, A_log.dtype)
    with pytest.raises(ValueError, match="zeroed\\['B'\\] was given, but there is no such gradient"):
        ts._backward(torch.ones_like(y), None, *args, A_log, *rest, None, True, ck, prb, zeroed=extra,
                     a_log=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_b_c_are_widened_once(rng, tiles, monkeypatch, dtype):
    """Half-precision time-varying B and C run as a float32 copy (float_bc): the outputs equal
    those of the float32 copy given directly, and their gradients come back in their dtype."""
    tiles(BD=4, T_bwd=2, SEG=4, R=2)
    copied = []
    real = ts.float_bc
    monkeypatch.setattr(ts, "float_bc", lambda x, cdt: (copied.append(x.dtype), real(x, cdt))[1])
    ins = make_case(rng, 2, 6, 19, 3, G=2, h0=False, dtype=torch.float32)  # float32 compute dtype
    ins["B"], ins["C"] = ins["B"].to(dtype), ins["C"].to(dtype)
    assert ts.float_bc(ins["B"], ins["A"].dtype).dtype == torch.float32
    copied.clear()
    outs = []
    for widen in (False, True):
        t = {k: (v.float() if widen and k in ("B", "C") else v) for k, v in ins.items() if v is not None}
        t = {k: v.detach().clone().requires_grad_() for k, v in t.items()}
        y, last = ts.selective_scan_triton(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"],
                                           t["delta_bias"], True, True, None)
        wt = torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype, device=y.device)
        g = torch.autograd.grad((y * wt).sum(), [t["B"], t["C"], t["u"]])
        outs.append((y, last, g))
    (y, last, (dB, dC, du)), (y2, last2, (dB2, dC2, du2)) = outs
    assert copied.count(dtype) == 2  # the half-precision B and C went through float_bc
    assert dB.dtype == dtype and dC.dtype == dtype
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    torch.testing.assert_close(last, last2, rtol=0, atol=0)
    torch.testing.assert_close(du, du2, rtol=0, atol=0)
    # dB and dC are sums over channel blocks added with atomics: equal up to their order
    # (compiled), then rounded to the half dtype.
    torch.testing.assert_close(dB.float(), dB2.to(dtype).float(), rtol=1e-2, atol=1e-5)
    torch.testing.assert_close(dC.float(), dC2.to(dtype).float(), rtol=1e-2, atol=1e-5)
    with torch.no_grad():
        y3 = ts.selective_scan_triton(ins["u"], ins["delta"], ins["A"], ins["B"], ins["C"], ins["D"],
                                      ins["z"], ins["delta_bias"], True, False, None)
    torch.testing.assert_close(y3, y2.detach(), rtol=0, atol=0)


def test_strided_time_varying_b_c_get_right_gradients(rng, tiles):
    """A time-varying B or C that is a non-contiguous view (time still its contiguous axis) gives
    the reference's gradients through the kernels' own autograd path."""
    tiles(BD=4, T_bwd=2, SEG=4, R=2)
    ins = make_case(rng, 2, 6, 19, 3, G=2)
    wide = {k: _t(rng, (2, 2, 5, 19)).requires_grad_() for k in ("B", "C")}
    views = {k: w[:, :, 1:4] for k, w in wide.items()}  # (b, G, N, L) views of wider leaves
    assert not views["B"].is_contiguous() and views["B"].stride(-1) == 1
    args = [views.get(k, ins[k]) for k in ARGS[:8]]
    y = ts.selective_scan_triton(*args, True, False, None)
    gy = torch.randn_like(y)
    dB, dC = torch.autograd.grad((y * gy).sum(), [wide["B"], wide["C"]])
    ref = {k: v.detach().clone().requires_grad_() for k, v in views.items()}
    yr = selective_scan_ref(*[ref.get(k, ins[k]) for k in ARGS[:8]], True)
    dBr, dCr = torch.autograd.grad((yr * gy).sum(), [ref["B"], ref["C"]])
    torch.testing.assert_close(y, yr, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(dB[:, :, 1:4], dBr, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(dC[:, :, 1:4], dCr, rtol=1e-10, atol=1e-11)
    assert not dB[:, :, [0, 4]].any() and not dC[:, :, [0, 4]].any()
    # The backward itself refuses such a B without a buffer strided like it.
    cfg = ts._config_for(ins["u"], 3)
    pr = ts._problem(ins["u"], ins["A"], views["B"], ins["C"], cfg)
    yv, _, ck = ts._forward(*[views.get(k, ins[k]) for k in ARGS[:9]], True, pr, save=True)
    prb = ts._problem(ins["u"], ins["A"], views["B"], ins["C"], cfg, backward=True)
    with pytest.raises(ValueError, match="B that is not contiguous needs dB_out"):
        ts._backward(torch.ones_like(yv), None, *[views.get(k, ins[k]) for k in ARGS[:9]], True, ck, prb)


def test_zero_steps_leave_the_state_unchanged(rng, tiles):
    """Left padding with Δ = 0 (no softplus) does not move the state."""
    tiles(BD=4)
    ins = make_case(rng, 1, 3, 20, 4, D=False, z=False, bias=False)
    y, last = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], False, True,
                                       ins["initial_state"])
    pad = {k: v for k, v in ins.items()}
    pad["u"] = torch.cat([_t(rng, (1, 3, 7)), ins["u"]], -1)
    pad["delta"] = torch.cat([torch.zeros(1, 3, 7, dtype=torch.float64, device=DEV),
                              ins["delta"]], -1)
    pad["B"] = torch.cat([_t(rng, (1, 1, 4, 7)), ins["B"]], -1)
    pad["C"] = torch.cat([_t(rng, (1, 1, 4, 7)), ins["C"]], -1)
    yp, lastp = ts.selective_scan_triton(*[pad[k] for k in ARGS[:8]], False, True,
                                         pad["initial_state"])
    torch.testing.assert_close(yp[..., 7:], y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lastp, last, rtol=1e-12, atol=1e-12)


def test_gradcheck(rng, tiles):
    """torch.autograd.gradcheck of the Triton autograd.Function, float64."""
    tiles(BD=2, T_fwd=2, T_bwd=2, SEG=4, R=2)
    ins = make_case(rng, 1, 3, 7, 2, G=1)
    live = [k for k in ARGS if ins[k] is not None]

    def f(*xs):
        kw = dict(zip(live, xs))
        y, last = ts.selective_scan_triton(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"],
                                           kw["D"], kw["z"], kw["delta_bias"], True, True,
                                           kw["initial_state"])
        return y, last

    xs = [ins[k].clone().requires_grad_(True) for k in live]
    assert torch.autograd.gradcheck(f, xs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_no_grad_path_matches_grad_path(rng, tiles):
    """Without autograd no checkpoints are saved; the output is the same."""
    tiles(BD=4, SEG=8)
    ins = make_case(rng, 1, 5, 30, 4)
    with torch.no_grad():
        y0 = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], True, False,
                                      ins["initial_state"])
    u = ins["u"].clone().requires_grad_(True)
    y1 = ts.selective_scan_triton(u, *[ins[k] for k in ARGS[1:8]], True, False,
                                  ins["initial_state"])
    assert y1.requires_grad
    torch.testing.assert_close(y0, y1.detach(), rtol=0, atol=0)
    assert math.isfinite(float(y0.abs().sum()))
    assert isinstance(y0, torch.Tensor) and not isinstance(y0, tuple)
    assert np.isfinite(y0.cpu().numpy()).all()


def test_parameter_grads_do_not_pin_the_large_buffers(rng, tiles):
    """D.grad (a view of the per-channel accumulator) must not keep the per-step
    B and C gradients alive, and every accumulator view is 16-byte aligned."""
    tiles(BD=4)
    ins = {k: (v.requires_grad_(True) if v is not None else None)
           for k, v in make_case(rng, 2, 5, 33, 3, h0=False).items()}
    y = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], True, False, None)
    y.sum().backward()
    small = ins["D"].grad.untyped_storage().nbytes()
    assert small < ins["B"].grad.untyped_storage().nbytes()
    assert small <= 8 * (5 * 3 + 5 + 5 + 8)  # A, D, delta_bias (+ alignment padding)
    for k in ("A", "B", "C", "D", "delta_bias"):
        assert ins[k].grad.data_ptr() % 16 == 0, k


def test_deterministic_mode_is_honoured(rng, tiles):
    """The backward adds gradients with atomics: torch.use_deterministic_algorithms
    makes it raise (or warn with warn_only) instead of silently varying."""
    tiles(BD=4)
    ins = {k: (v.requires_grad_(True) if v is not None else None)
           for k, v in make_case(rng, 1, 3, 9, 2).items()}
    y = ts.selective_scan_triton(*[ins[k] for k in ARGS[:8]], True, False, None)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="atomics.*backend='torch'"):
            y.sum().backward(retain_graph=True)
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match="atomics"):
            y.sum().backward()
    finally:
        torch.use_deterministic_algorithms(before)


def test_backward_uses_its_own_range_floor(monkeypatch):
    """min_range_bwd (not min_range) sets the backward's shortest time range."""
    seen = []
    monkeypatch.setattr(ts, "_ranges", lambda programs, nseg, device, R, warps, fill, min_segs=1,
                        enough=0: seen.append(min_segs) or (1, nseg))
    cfg = ts._Config(BD=4, T_fwd=4, T_bwd=2, SEG=8, num_warps=1, min_range=64, min_range_bwd=16)
    u, A = torch.zeros(1, 4, 100), torch.zeros(4, 2)
    B = torch.zeros(1, 1, 2, 100)
    ts._problem(u, A, B, B, cfg)
    ts._problem(u, A, B, B, cfg, backward=True)
    ts._problem(u, A, B, B, ts._Config(BD=4, T_fwd=4, T_bwd=2, SEG=8, num_warps=1, min_range=64),
                backward=True)
    assert seen == [64 // 8, 16 // 8, 64 // 8]


def _channel_major(x):
    """The (b, d, L) tensor ``x`` as a view of a (d, b, L) buffer (the Mamba block's layout)."""
    return x.transpose(0, 1).contiguous().transpose(0, 1)


@pytest.mark.parametrize("z", [True, False])
def test_channel_major_layout_and_caller_buffers(rng, tiles, z):
    """The fused Mamba block's use of the kernels: every (b, d, L) tensor a view of a channel-major
    (d, b, L) buffer (z and dz halves of a (2d, b, L) one), B and C rows of a (2N, b, L) buffer, y
    recomputed into ``y_out``, dB and dC added into the caller's zeroed buffers: the same values as
    the contiguous call, and nothing written outside the views."""
    tiles(BD=4, T_fwd=4, T_bwd=4, SEG=8, R=2, T_state=8)
    b, d, L, N = 2, 5, 19, 3
    ins = make_case(rng, b, d, L, N, z=z, h0=False)
    cfg = ts._config_for(ins["u"], N)
    u, delta = _channel_major(ins["u"]), _channel_major(ins["delta"])
    zz = torch.zeros(2 * d, b, L, dtype=torch.float64, device=DEV)
    if z:
        zz[d:] = ins["z"].transpose(0, 1)
    zv = zz[d:].transpose(0, 1) if z else None  # (b, d, L), strides (L, b L, 1)
    bc = torch.cat([ins["B"][:, 0], ins["C"][:, 0]], 1).transpose(0, 1).contiguous()  # (2N, b, L)
    Bv = bc[:N].transpose(0, 1)[:, None]  # (b, 1, N, L), strides (L, ., b L, 1)
    Cv = bc[N:].transpose(0, 1)[:, None]
    args = (u, delta, ins["A"], Bv, Cv, ins["D"])
    pr = ts._problem(u, ins["A"], Bv, Cv, cfg)
    y, _, ckpt = ts._forward(*args, zv, ins["delta_bias"], None, True, pr, save=True)
    assert y.stride() == u.stride()
    plain_args = (ins["u"], ins["delta"], ins["A"], ins["B"], ins["C"], ins["D"])
    y_ref = selective_scan_ref(*plain_args, ins["z"], ins["delta_bias"], True)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    dout = _t(rng, (b, d, L))
    prb = ts._problem(ins["u"], ins["A"], ins["B"], ins["C"], cfg, backward=True)
    _, _, ckpt_plain = ts._forward(*plain_args, ins["z"], ins["delta_bias"], None, True, prb, save=True)
    plain = ts._backward(dout, None, *plain_args, ins["z"], ins["delta_bias"], None, True, ckpt_plain, prb)
    prb = ts._problem(u, ins["A"], Bv, Cv, cfg, backward=True)
    dzz = torch.full((2 * d, b, L), float("nan"), dtype=torch.float64, device=DEV)
    dbc = torch.zeros(2 * N + 1, b, L, dtype=torch.float64, device=DEV)  # one spare row
    y_out = torch.full_like(y, float("nan"))
    fused = ts._backward(_channel_major(dout), None, *args, zv, ins["delta_bias"], None, True, ckpt,
                         prb, dz_out=dzz[d:].transpose(0, 1) if z else None, y_out=y_out,
                         dB_out=dbc[:N].transpose(0, 1)[:, None],
                         dC_out=dbc[N:2 * N].transpose(0, 1)[:, None])
    torch.testing.assert_close(y_out, y, rtol=1e-12, atol=1e-12)
    for k in ("u", "delta", "A", "D", "delta_bias"):
        torch.testing.assert_close(fused[k], plain[k], rtol=1e-12, atol=1e-12, msg=k)
    assert fused["u"].stride() == u.stride()
    torch.testing.assert_close(dbc[:N].transpose(0, 1), plain["B"][:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dbc[N:2 * N].transpose(0, 1), plain["C"][:, 0], rtol=1e-12, atol=1e-12)
    assert (dbc[2 * N] == 0).all()
    if z:
        torch.testing.assert_close(dzz[d:].transpose(0, 1), plain["z"], rtol=1e-12, atol=1e-12)
        assert torch.isnan(dzz[:d]).all()  # nothing written outside the view
    # Tensors whose layouts differ from u's are refused, not misread.
    with pytest.raises(ValueError, match="must match"):
        ts._backward(dout, None, *args, zv, ins["delta_bias"], None, True, ckpt, prb)
    # A u with gaps between its rows (half of a wider buffer): outputs allocated like it would not
    # share its strides, so both passes refuse it instead of writing past their buffers.
    def wide(x):  # (b, d, L) as half of a (b, 2d, L) buffer: batch stride 2 d L
        return torch.cat([x, x], 1)[:, :d]

    with pytest.raises(ValueError, match="y has strides"):
        ts._forward(wide(ins["u"]), wide(ins["delta"]), ins["A"], ins["B"], ins["C"], ins["D"], None, None,
                    None, True, pr, save=True)
    with pytest.raises(ValueError, match="du has strides"):
        ts._backward(wide(dout), None, wide(ins["u"]), wide(ins["delta"]), ins["A"], ins["B"], ins["C"],
                     ins["D"], None, None, None, True, ckpt_plain, prb)
    with pytest.raises(ValueError, match="dB_out"):
        ts._backward(_channel_major(dout), None, *args, zv, ins["delta_bias"], None, True, ckpt, prb,
                     dB_out=torch.zeros_like(ins["B"]))
