"""Long sequences on a GPU: Mamba's linear cost against attention's quadratic one.

Two things a scientist with a long recording wants to know:

1. How inference time and memory grow with the sequence length L, for a
   4-layer Mamba and a Transformer with the same number of parameters.
2. That a recording far longer than fits in one pass (10 million samples here)
   can be processed chunk by chunk from a carried state, in constant memory --
   the chunked output equals one pass (tested in ``tests/test_nn_mamba.py``).

Needs a CUDA GPU; without one it says so and exits. Writes
``long_sequence_scaling.png`` and ``long_sequence_scaling.csv`` to ``--outdir``.
Fast mode (``--fast`` or ``SCIAMBA_FAST=1``) uses small sizes.

Run::

    python examples/long_sequence_scaling.py [--fast] [--outdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np
import torch


def _timed(fn) -> tuple[float, float]:
    """(ms, peak GiB) of one call, after a warm-up call."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3, torch.cuda.max_memory_allocated() / 2**30


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Mamba vs Transformer scaling in L (GPU)")
    ap.add_argument("--fast", action="store_true", help="small sizes (also SCIAMBA_FAST=1)")
    ap.add_argument("--outdir", default=".", help="where to write the figure and the table")
    args = ap.parse_args(argv)
    fast = args.fast or os.environ.get("SCIAMBA_FAST", "") not in ("", "0")
    if not torch.cuda.is_available():
        print("long_sequence_scaling.py needs a CUDA GPU and none is available: nothing to do.")
        return 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciamba.kernels import available_backends
    from sciamba.nn import Mamba, TransformerEncoder, describe

    torch.manual_seed(0)
    d_model, n_layers = 256, 4
    mamba = Mamba(d_model, n_layers).cuda().eval()
    n_params = describe(mamba).n_params
    # Feed-forward width that gives the Transformer the same parameter count.
    fixed = n_layers * (4 * d_model**2 + 9 * d_model) + 2 * d_model
    d_ff = round((n_params - fixed) / (n_layers * (2 * d_model + 1)))
    transformer = TransformerEncoder(d_model, n_layers, n_heads=4, d_ff=d_ff).cuda().eval()
    print(f"backend {available_backends('cuda').auto}; parameters: Mamba {n_params:,}, "
          f"Transformer {describe(transformer).n_params:,}")

    lengths = [2**10, 2**12] if fast else [2**10, 2**12, 2**14, 2**16, 2**18, 2**20]
    rows = []
    for L in lengths:
        x = torch.randn(1, L, d_model, device="cuda")
        for name, model in (("mamba", mamba), ("transformer", transformer)):
            if any(r["model"] == name and r["status"] != "ok" for r in rows):
                status = "skipped"  # already out of memory at a shorter length
            elif name == "transformer" and L > 2**18:
                status = "skipped"  # quadratic: tens of seconds per pass beyond this
            else:
                torch.cuda.empty_cache()
                try:
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                        ms, gb = _timed(lambda: model(x))
                    status = "ok"
                except torch.OutOfMemoryError:
                    status = "out of memory"
            if status != "ok":
                ms = gb = None
            rows.append(dict(model=name, L=L, status=status, ms=ms, peak_gb=gb))
            print(f"{name:12s} L={L:>8,}  " + (status if ms is None else f"{ms:9.1f} ms  {gb:6.2f} GiB"))

    # A long recording in chunks: the state carries everything the model needs.
    total = 2**20 if fast else 10_000_000
    chunk = 2**16 if fast else 2**18
    t = np.arange(total) / 1000.0
    signal = np.sin(2 * np.pi * (0.5 + 0.001 * t) * t) + 0.3 * np.random.default_rng(0).standard_normal(total)
    embed = torch.nn.Linear(1, d_model).cuda()
    torch.cuda.reset_peak_memory_stats()
    state, start = None, time.perf_counter()
    summary = torch.zeros(d_model, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(0, total, chunk):
            seg = torch.as_tensor(signal[i : i + chunk], dtype=torch.float32, device="cuda")[None, :, None]
            y, state = mamba(embed(seg), state=state, return_state=True)
            summary += y[0].float().sum(0)
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    chunk_gb = torch.cuda.max_memory_allocated() / 2**30
    print(f"chunked pass over {total:,} samples in chunks of {chunk:,}: {secs:.1f} s "
          f"({total / secs / 1e6:.2f} M samples/s), peak {chunk_gb:.2f} GiB, "
          f"state {state.nbytes() / 2**10:.0f} KiB, finite: {bool(torch.isfinite(summary).all())}")

    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "long_sequence_scaling.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["model", "L", "status", "ms", "peak_gb"])
        w.writeheader()
        w.writerows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("mamba", "o-"), ("transformer", "s--")):
        ok = [r for r in rows if r["model"] == name and r["status"] == "ok"]
        axes[0].loglog([r["L"] for r in ok], [r["ms"] for r in ok], style, label=name)
        axes[1].loglog([r["L"] for r in ok], [r["peak_gb"] for r in ok], style, label=name)
    axes[0].set(xlabel="sequence length L", ylabel="forward time (ms)", title="inference time, batch 1, bf16")
    axes[1].set(xlabel="sequence length L", ylabel="peak memory (GiB)", title="peak GPU memory")
    axes[1].axhline(chunk_gb, color="gray", lw=0.8, label=f"Mamba, {total:,} samples in chunks")
    for ax in axes:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{torch.cuda.get_device_name()}: Mamba vs Transformer, {n_params:,} parameters each")
    fig.tight_layout()
    path = os.path.join(args.outdir, "long_sequence_scaling.png")
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
