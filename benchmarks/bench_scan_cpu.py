"""CPU benchmark of the torch selective-scan backend against mambapy's parallel scan.

Issue 3's CPU target: on (batch 8, dim 128, L 4096, N 16) fp32 forward, the
torch backend is >= 10x faster than mambapy's ``pscan`` used as in mambapy's
Mamba (``MambaBlock.selective_scan``), with <= 1/4 of its peak memory, and
its tokens/s stay flat as L grows from 1k to 64k.

Every measurement runs in a fresh subprocess, so the peak resident memory
(``resource.getrusage(...).ru_maxrss``; tracemalloc does not see torch's
allocations) belongs to that computation alone; we report the peak minus the
resident size just before the timed calls (inputs, torch and its libraries
excluded). Times are the median of ``--repeat`` calls after one warm-up call:
wall-clock, and the process CPU time (user + system of all threads), which
is less disturbed by other jobs on a shared machine.

mambapy (``pip install mambapy``) is imported here only; it is not a sciamba
dependency. Without it the comparison rows are skipped.

Usage::

    python benchmarks/bench_scan_cpu.py            # table + append to RESULTS.md
    python benchmarks/bench_scan_cpu.py --quick    # smaller sweep, no append
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker(impl: str, b: int, d: int, L: int, N: int, mode: str, repeat: int) -> dict:
    """Run one configuration in this (fresh) process and return its figures."""
    import torch

    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    gen = torch.Generator().manual_seed(0)
    grad = mode == "fwd+bwd"
    # mamba's usual regime: softplus'd Δ around 1e-3..1e-1, S4D-real A.
    u = torch.randn(b, d, L, generator=gen)
    delta = torch.randn(b, d, L, generator=gen) * 0.5 - 3.0
    A = -torch.arange(1, N + 1, dtype=torch.float32).repeat(d, 1)
    B = torch.randn(b, N, L, generator=gen)
    C = torch.randn(b, N, L, generator=gen)
    D = torch.ones(d)
    leaves = [u, delta, A, B, C, D]
    if grad:
        for x in leaves:
            x.requires_grad_()

    if impl == "sciamba":
        from sciamba.kernels import selective_scan

        def call():
            y = selective_scan(u, delta, A, B, C, D, delta_softplus=True, backend="torch")
            if grad:
                y.backward(torch.ones_like(y))
            return y

    elif impl == "mambapy":
        from mambapy.pscan import pscan

        # mambapy's layout is (B, L, ED); transposes are part of using it.
        x_l = u.transpose(1, 2)  # (b L d)
        B_l, C_l = B.transpose(1, 2), C.transpose(1, 2)  # (b L N)

        def call():
            # Exactly mambapy.mamba.MambaBlock.selective_scan (with softplus as in its ssm()).
            dl = torch.nn.functional.softplus(delta.transpose(1, 2))  # (b L d)
            deltaA = torch.exp(dl.unsqueeze(-1) * A)  # (b L d N)
            deltaB = dl.unsqueeze(-1) * B_l.unsqueeze(2)  # (b L d N)
            BX = deltaB * x_l.unsqueeze(-1)  # (b L d N)
            hs = pscan(deltaA, BX)
            y = (hs @ C_l.unsqueeze(-1)).squeeze(3) + D * x_l  # (b L d)
            if grad:
                y.backward(torch.ones_like(y))
            return y

    else:
        raise ValueError(impl)

    ctx = torch.enable_grad() if grad else torch.no_grad()
    # Baseline: inputs built, modules imported, nothing computed yet.
    rss0 = _rss_mb()
    with ctx:
        call()  # warm-up (also the first touch of the allocator's pages)
        times, cpu = [], []
        for _ in range(repeat):
            for x in leaves:
                x.grad = None
            t, c = time.perf_counter(), time.process_time()
            call()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "impl": impl, "shape": [b, d, L, N], "mode": mode, "median_s": statistics.median(times),
        "min_s": min(times), "cpu_s": statistics.median(cpu), "peak_extra_mb": peak - rss0,
        "threads": torch.get_num_threads(),
    }


def run(impl: str, b: int, d: int, L: int, N: int, mode: str, repeat: int) -> dict | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, str(b), str(d), str(L), str(N), mode,
           str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  [{impl} {b}x{d}x{L}x{N} {mode}] failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _device() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sweep, do not append to RESULTS.md")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["BENCH_THREADS"] = str(args.threads)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    have_mambapy = True
    try:
        import mambapy  # noqa: F401
    except ImportError:
        have_mambapy = False
        print("mambapy not installed (pip install mambapy): comparison rows skipped", file=sys.stderr)

    b, d, N = 8, 128, 16
    rows = []
    # 1. The comparison shape, side by side.
    for mode in ("fwd",) if args.quick else ("fwd", "fwd+bwd"):
        ours = run("sciamba", b, d, 4096, N, mode, args.repeat)
        ref = run("mambapy", b, d, 4096, N, mode, args.repeat) if have_mambapy else None
        rows.append((ours, ref))
    # 2. Tokens/s as L grows.
    lengths = (1024, 4096) if args.quick else (1024, 4096, 16384, 65536)
    sweep = [run("sciamba", b, d, L, N, "fwd", max(1, args.repeat if L <= 16384 else 3)) for L in lengths]

    load = os.getloadavg()
    header = (
        f"## bench_scan_cpu.py -- {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Device: {_device()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"load average during the run {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (other jobs share the cores). "
        f"fp32, delta_softplus, D; median of {args.repeat} calls after a warm-up; peak = max RSS minus RSS "
        "with inputs built, before the first call; each case in its own process; CPU = process CPU time "
        "(all threads).\n"
    )
    columns = (
        "| shape b×d×L×N | mode | sciamba torch ms (CPU ms) | peak MB | mambapy pscan ms (CPU ms) | peak MB "
        "| speed-up wall (CPU) | memory ratio |"
    )
    lines = [header, columns, "|---|---|---|---|---|---|---|---|"]
    for ours, ref in rows:
        if ours is None:
            continue
        shape = "×".join(map(str, ours["shape"]))
        if ref is not None:
            speed = ref["median_s"] / ours["median_s"]
            speed_cpu = ref["cpu_s"] / ours["cpu_s"]
            mem = ours["peak_extra_mb"] / max(ref["peak_extra_mb"], 1e-9)
            lines.append(
                f"| {shape} | {ours['mode']} | {ours['median_s'] * 1e3:.1f} ({ours['cpu_s'] * 1e3:.1f}) | "
                f"{ours['peak_extra_mb']:.0f} | {ref['median_s'] * 1e3:.1f} ({ref['cpu_s'] * 1e3:.1f}) | "
                f"{ref['peak_extra_mb']:.0f} | {speed:.1f}× ({speed_cpu:.1f}×) | {mem:.3f} |"
            )
        else:
            lines.append(f"| {shape} | {ours['mode']} | {ours['median_s'] * 1e3:.1f} ({ours['cpu_s'] * 1e3:.1f}) | "
                         f"{ours['peak_extra_mb']:.0f} | – | – | – | – |")
    lines += ["", "| L (b=8, d=128, N=16, fwd) | sciamba torch ms (CPU ms) | Mtokens/s (b·L per wall s) | peak MB |",
              "|---|---|---|---|"]
    for r in sweep:
        if r is None:
            continue
        L = r["shape"][2]
        lines.append(f"| {L} | {r['median_s'] * 1e3:.1f} ({r['cpu_s'] * 1e3:.1f}) | {b * L / r['median_s'] / 1e6:.3f} | "
                     f"{r['peak_extra_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not (args.quick or args.no_append):
        with open(RESULTS, "a") as f:
            f.write("\n" + text)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        impl, b, d, L, N, mode, repeat = sys.argv[2:9]
        print(json.dumps(_worker(impl, int(b), int(d), int(L), int(N), mode, int(repeat))))
    else:
        main()
