"""GPU benchmark and compiled-correctness check of the Triton selective scan.

Times ``sciamba.kernels.selective_scan(..., backend="triton")`` with z, D,
delta_bias and softplus on and N = 16 (the setting of issue 3's table of
mamba_ssm 2.3.2 CUDA times on an H100), forward and forward+backward, with
``triton.testing.do_bench`` (median of repeated runs, warm-up excluded) on
random inputs. For each row it prints our time, the memory floor (bytes of
u, delta, z, B, C read once and y written once, over the measured copy
bandwidth), the percentage of that floor reached, and the ratio to the CUDA
figure. ``--check`` first runs the compiled kernels against the float64
reference (fp32 and bf16, gradients of every input), a no-NaN run at
L = 1,000,000 and an extreme-step run. Results are appended with date and
device to ``benchmarks/RESULTS.md``.

Usage (needs a CUDA device)::

    python benchmarks/bench_scan.py --check          # checks + full table
    python benchmarks/bench_scan.py --rows 2 --tune  # compare tile configs
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

# issue 3: (dtype, batch, dim, L, CUDA fwd ms, CUDA fwd+bwd ms) on one H100
ROWS = [
    ("fp32", 8, 1536, 96, 0.070, 0.384),
    ("fp32", 8, 1536, 720, 0.369, 1.372),
    ("fp32", 8, 1536, 2048, 0.881, 2.950),
    ("fp32", 8, 1536, 8192, 3.795, 12.07),
    ("fp32", 1, 256, 1_048_576, 12.33, 40.98),
    ("bf16", 8, 1536, 2048, 0.451, 2.287),
    ("bf16", 8, 1536, 8192, 2.113, 9.342),
]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
N_STATE = 16
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def make_inputs(b, d, L, N, dtype, device, requires_grad=False, seed=None):
    """Mamba-like random inputs: S4D-real A, softplus steps around 1e-3..1e-1."""
    g = torch.Generator(device=device)
    g.manual_seed(seed if seed is not None else int(time.time_ns() % 2**31))

    def rn(*shape, dt=dtype):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float32).to(dt)

    u = rn(b, d, L)
    delta = (rn(b, d, L, dt=torch.float32) * 0.5).to(dtype)
    z = rn(b, d, L)
    A = -torch.arange(1, N + 1, device=device, dtype=torch.float32).repeat(d, 1)
    A = A * (0.5 + torch.rand(d, N, generator=g, device=device))
    B = rn(b, 1, N, L, dt=torch.float32)
    C = rn(b, 1, N, L, dt=torch.float32)
    D = rn(d, dt=torch.float32)
    dt0 = torch.exp(torch.rand(d, generator=g, device=device) * (math.log(0.1) - math.log(1e-3))
                    + math.log(1e-3))
    delta_bias = dt0 + torch.log(-torch.expm1(-dt0))  # inverse softplus, as Mamba's init
    ins = [u, delta, A, B, C, D, z, delta_bias]
    if requires_grad:
        for t in ins:
            t.requires_grad_(True)
    return ins


def scan_fn():
    try:
        from sciamba.kernels import selective_scan

        def f(u, delta, A, B, C, D, z, bias, **kw):
            return selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True,
                                  backend="triton", **kw)
    except ImportError:  # the public API is not there: call the kernels directly
        from sciamba.kernels._triton_scan import selective_scan_triton

        def f(u, delta, A, B, C, D, z, bias, return_last_state=False, initial_state=None):
            return selective_scan_triton(u, delta, A, B, C, D, z, bias, True, return_last_state,
                                         initial_state)
    return f


def copy_bandwidth(device) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read and written."""
    from triton.testing import do_bench

    x = torch.empty(2**28, device=device, dtype=torch.float32)
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), return_mode="median")
    return 2 * x.numel() * 4 / (ms * 1e-3)


def floor_bytes(b, d, L, N, dtype) -> int:
    es = torch.finfo(DTYPES[dtype]).bits // 8
    return 4 * b * d * L * es + 2 * b * N * L * 4  # u, delta, z, y; B, C (fp32)


def direct_fn():
    """The kernels without the public API's validation and dispatch."""
    from sciamba.kernels._triton_scan import selective_scan_triton

    def f(u, delta, A, B, C, D, z, bias):
        return selective_scan_triton(u, delta, A, B, C, D, z, bias, True, False, None)
    return f


def bench_row(f, dtype, b, d, L, device, fwdbwd=True, one_thread=False):
    """Forward and forward+backward times; ``one_thread``: also forward+backward with the
    backward on the calling thread (``torch.autograd.set_multithreading_enabled(False)``)."""
    from triton.testing import do_bench

    ins = make_inputs(b, d, L, N_STATE, DTYPES[dtype], device, requires_grad=fwdbwd)
    with torch.no_grad():
        t_fwd = do_bench(lambda: f(*ins), warmup=50, rep=300, return_mode="median")
    t_fb = t_fb1 = float("nan")
    if fwdbwd:
        gy = torch.randn(b, d, L, device=device, dtype=DTYPES[dtype])

        def fb():
            y = f(*ins)
            y.backward(gy)

        t_fb = do_bench(fb, warmup=50, rep=300, grad_to_none=ins, return_mode="median")
        if one_thread:
            with torch.autograd.set_multithreading_enabled(False):
                t_fb1 = do_bench(fb, warmup=50, rep=300, grad_to_none=ins, return_mode="median")
    del ins
    torch.cuda.empty_cache()
    return (t_fwd, t_fb, t_fb1) if one_thread else (t_fwd, t_fb)


def graph_ms(fn) -> float:
    """GPU time of ``fn``: captured once as a CUDA graph, replays timed by ``do_bench``.

    A replay launches the captured kernels without Python, autograd or launch
    overhead, so this is what the kernels cost when the host keeps up (inside
    a larger captured or GPU-bound program). The host-inclusive times above are
    what one eager call costs on this machine's CPU.
    """
    from triton.testing import do_bench

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compiles, allocator pools) off the capture
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    ms = do_bench(graph.replay, warmup=50, rep=300, return_mode="median")
    del graph
    return ms


def bench_row_gpu(f, dtype, b, d, L, device):
    """Forward and forward+backward GPU times (:func:`graph_ms`)."""
    ins = make_inputs(b, d, L, N_STATE, DTYPES[dtype], device, requires_grad=True)
    gy = torch.randn(b, d, L, device=device, dtype=DTYPES[dtype])

    def fwd():
        with torch.no_grad():
            f(*ins)

    def fb():
        torch.autograd.grad(f(*ins), ins, gy)

    t_fwd, t_fb = graph_ms(fwd), graph_ms(fb)
    del ins
    torch.cuda.empty_cache()
    return t_fwd, t_fb


# ---------------------------------------------------------------------------
# compiled correctness
# ---------------------------------------------------------------------------
def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def check_against_reference(f, device, log):
    from sciamba.kernels import selective_scan_ref

    cases = [  # (dtype, b, d, L, N, G, time-invariant B/C, initial state)
        ("fp32", 2, 67, 1000, 16, 1, False, True),
        ("fp32", 2, 96, 4099, 16, 2, False, False),
        ("fp32", 1, 45, 257, 64, 3, False, True),
        ("fp32", 2, 33, 300, 4, 1, True, True),
        ("fp32", 3, 16, 17, 1, 1, False, False),
        ("bf16", 2, 67, 1000, 16, 1, False, True),
        ("bf16", 2, 64, 2048, 16, 1, False, False),
    ]
    tol = {"fp32": (6e-4, 2e-3), "bf16": (3e-2, 5e-2)}
    ok = True
    for dtype, b, d, L, N, G, ti, h0 in cases:
        dt = DTYPES[dtype]
        u, delta, A, B, C, D, z, bias = make_inputs(b, d, L, N, dt, device)
        A = -torch.rand(d, N, device=device) * 3 - 0.05
        if ti:
            B, C = torch.randn(d, N, device=device), torch.randn(d, N, device=device)
        elif G > 1:
            B = torch.randn(b, G, N, L, device=device)
            C = torch.randn(b, G, N, L, device=device)
        init = torch.randn(b, d, N, device=device) if h0 else None
        ins = [u, delta, A, B, C, D, z, bias] + ([init] if h0 else [])
        for t in ins:
            t.requires_grad_(True)
        y, last = f(u, delta, A, B, C, D, z, bias, return_last_state=True, initial_state=init)
        ins64 = [t.detach().double().requires_grad_(True) for t in ins]
        yr, lr = selective_scan_ref(*ins64[:7], ins64[7], delta_softplus=True,
                                    return_last_state=True,
                                    initial_state=ins64[8] if h0 else None)
        gy = torch.randn_like(yr)
        gl = torch.randn_like(lr)
        grads = torch.autograd.grad((y.double() * gy).sum() + (last.double() * gl).sum(), ins)
        grads_r = torch.autograd.grad((yr * gy).sum() + (lr * gl).sum(), ins64)
        rtol, atol = tol[dtype]
        names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0"]
        errs = {"y": rel_err(y, yr), "last": rel_err(last, lr)}
        close = torch.allclose(y.double(), yr.to(y.dtype).double(), rtol=rtol, atol=atol)
        for nm, g1, g2 in zip(names, grads, grads_r):
            errs[nm] = rel_err(g1, g2)
        finite = all(torch.isfinite(g).all().item() for g in grads) and torch.isfinite(y).all().item()
        worst = max(errs.values())
        limit = 1e-4 if dtype == "fp32" else 3e-2
        passed = close and finite and worst < limit
        ok &= passed
        log(f"| {dtype} | {b}x{d}x{L} N={N} G={G}{' time-inv' if ti else ''}"
            f"{' h0' if h0 else ''} | {errs['y']:.1e} | "
            + " ".join(f"{k}:{v:.0e}" for k, v in errs.items() if k != "y")
            + f" | {'pass' if passed else 'FAIL'} |")
    return ok


def check_extremes(f, device, log):
    ok = True
    # L = 1,000,000, forward and backward: no NaN / inf.
    b, d, L = 1, 64, 1_000_000
    ins = make_inputs(b, d, L, N_STATE, torch.float32, device, requires_grad=True)
    y, last = f(*ins, return_last_state=True)
    y.backward(torch.randn_like(y))
    fin = torch.isfinite(y).all().item() and torch.isfinite(last).all().item() and all(
        torch.isfinite(t.grad).all().item() for t in ins)
    log(f"| L=1,000,000 fp32 1x64 N=16, fwd+bwd | all finite: {fin} | "
        f"max|y| {y.abs().max().item():.3g} |")
    ok &= fin
    # Extreme steps: Δ from 1e-6 to 1e3, A down to -1e3.
    b, d, L, N = 2, 40, 3000, 16
    u = torch.randn(b, d, L, device=device)
    delta = 10 ** (torch.rand(b, d, L, device=device) * 9 - 6)
    A = -(10 ** (torch.rand(d, N, device=device) * 6 - 3))
    B = torch.randn(b, 1, N, L, device=device)
    C = torch.randn(b, 1, N, L, device=device)
    ins = [u, delta, A, B, C]
    for t in ins:
        t.requires_grad_(True)
    from sciamba.kernels import selective_scan
    y = selective_scan(u, delta, A, B, C, backend="triton")
    y.backward(torch.randn_like(y))
    fin = torch.isfinite(y).all().item() and all(torch.isfinite(t.grad).all().item() for t in ins)
    log(f"| extreme Δ 1e-6..1e3, A to -1e3, 2x40x3000 | all finite: {fin} | |")
    ok &= fin
    return ok


# ---------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="*", help="row indices of ROWS (default: all)")
    p.add_argument("--check", action="store_true", help="compiled correctness checks first")
    p.add_argument("--tune", action="store_true", help="compare tile configs on the rows")
    p.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    p.add_argument("--section-file", help="also write this run's section to this file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_scan.py needs a CUDA device", file=sys.stderr)
        return 2
    import triton

    device = torch.device("cuda")
    f = scan_fn()
    out = []

    def log(line):
        print(line, flush=True)
        out.append(line)

    name = torch.cuda.get_device_name(device)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    log(f"\n## Triton selective scan, {name}, {stamp}\n")
    log(f"torch {torch.__version__}, triton {triton.__version__}; N = {N_STATE}; "
        "z, D, delta_bias, softplus on.\n")
    ok = True
    if args.check:
        log("Compiled correctness against `selective_scan_ref` in float64 (relative L2 errors; "
            "y also checked with mamba_ssm's allclose tolerances):\n")
        log("| dtype | shape | y | last state and gradients | result |")
        log("|---|---|---|---|---|")
        ok &= check_against_reference(f, device, log)
        log("")
        log("| stress | result | |")
        log("|---|---|---|")
        ok &= check_extremes(f, device, log)
        log("")
    bw = copy_bandwidth(device)
    log(f"Copy bandwidth measured: {bw / 1e12:.2f} TB/s.\n")
    rows = [ROWS[i] for i in args.rows] if args.rows else ROWS
    if args.tune:
        from sciamba.kernels import _triton_scan as ts

        import dataclasses

        base = ts._default_config(N_STATE, False)
        cfgs = [None,  # the defaults of each dtype
                dataclasses.replace(base, T_fwd=4, BD=32),
                dataclasses.replace(base, fill=16, fill_bwd=32),
                dataclasses.replace(base, T_bwd=4),
                dataclasses.replace(base, BD_bwd=16)]
        for cfg in cfgs:
            ts._CONFIG_OVERRIDE = cfg
            for dtype, b, d, L, cf, cfb in rows:
                tf, tfb = bench_row(f, dtype, b, d, L, device)
                log(f"tune {cfg} {dtype} {b}x{d}x{L}: fwd {tf:.3f} ms, fwd+bwd {tfb:.3f} ms")
        ts._CONFIG_OVERRIDE = None
        return 0
    log("Times in ms, median of `triton.testing.do_bench`. *API*: the public "
        "`selective_scan(..., backend=\"triton\")` (validation and dispatch included); "
        "*direct*: `selective_scan_triton`, the kernels and their host code. "
        "% of floor and the CUDA ratios use the direct times; the API ratio is in brackets. "
        "*GPU*: the API call captured as a CUDA graph and replayed (no host overhead; "
        "see `graph_ms`), with its ratio to the CUDA figure. *1-thread*: the API's forward+backward "
        "with the backward on the calling thread (`torch.autograd.set_multithreading_enabled(False)`; "
        "by default a CUDA backward runs on autograd's device thread), with its ratio.\n")
    log("| dtype | batch×dim×L | fwd API | fwd direct | floor | % of floor | fwd / CUDA "
        "| fwd GPU (/ CUDA) | fwd+bwd API | fwd+bwd direct | fwd+bwd / CUDA "
        "| fwd+bwd API 1-thread (/ CUDA) | fwd+bwd GPU (/ CUDA) |")
    log("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fd = direct_fn()
    for dtype, b, d, L, cuda_f, cuda_fb in rows:
        tf, tfb, tfb1 = bench_row(f, dtype, b, d, L, device, one_thread=True)
        tfd, tfbd = bench_row(fd, dtype, b, d, L, device)
        gf, gfb = bench_row_gpu(f, dtype, b, d, L, device)
        fl = floor_bytes(b, d, L, N_STATE, dtype) / bw * 1e3
        log(f"| {dtype} | {b}×{d}×{L:,} | {tf:.3f} | {tfd:.3f} | {fl:.3f} | {100 * fl / tfd:.0f}% | "
            f"{tfd / cuda_f:.2f} ({tf / cuda_f:.2f}) | {gf:.3f} ({gf / cuda_f:.2f}) | "
            f"{tfb:.3f} | {tfbd:.3f} | {tfbd / cuda_fb:.2f} ({tfb / cuda_fb:.2f}) | "
            f"{tfb1:.3f} ({tfb1 / cuda_fb:.2f}) | {gfb:.3f} ({gfb / cuda_fb:.2f}) |")
    log("")
    if args.section_file:
        with open(args.section_file, "w") as fh:
            fh.write("\n".join(out) + "\n")
    if not args.no_append:
        with open(RESULTS, "a") as fh:
            fh.write("\n".join(out) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
