"""Static census of the Triton scan kernels' machine code, on any machine (no GPU needed).

The scan kernels are bound by instruction issue and latency rather than by
memory (``bench_scan.py``: the bf16 forward runs at about a quarter of the
copy-bandwidth floor), so what a change does to the compiled inner loop is the
first thing to know, and device time is scarce. This script runs the real host
code of ``sciamba.kernels._triton_scan`` on CPU tensors with its launch function
replaced by a recorder, compiles each recorded launch with Triton for a CUDA
target (default ``sm_90``, the H100) through a stand-in driver, disassembles the
cubin with the ``nvdisasm`` and ``cuobjdump`` that ship with Triton, and prints
per kernel: registers, shared memory, and the instructions of its main loop
(the largest innermost one: one chunk of a program's tile) by class.

The counts are static: they say how long one pass through a loop is, not how
long it takes (latency, occupancy and memory decide that; time on a device is
``bench_scan.py``'s job). The Triton here may differ from the device's (ptxas
too), and versions compile the same source differently (Triton 3.6 and 3.9 laid
out the bf16 forward's per-step math differently: 956 against 711 instructions
a chunk before ``_triton_scan._pin``), so census with the device's version
(``pip install --target DIR triton==3.6.0``, then ``PYTHONPATH=DIR``) and
compare counts made by one installation.

Usage::

    python benchmarks/sass_census.py                 # the default rows
    python benchmarks/sass_census.py --dump DIR      # also write SASS, PTX and TTGIR
    python benchmarks/sass_census.py --append        # add the table to RESULTS.md
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compile, do not interpret

import torch  # noqa: E402
import triton  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"

# (name, pass, dtype, batch, dim, L); N = 16, z, D, delta_bias, softplus on, B and C (b, 1, N, L)
ROWS = [
    ("forward bf16 8x1536x2048", "fwd", torch.bfloat16, 8, 1536, 2048),
    ("forward fp32 8x1536x2048", "fwd", torch.float32, 8, 1536, 2048),
    ("backward bf16 8x512x4096", "bwd", torch.bfloat16, 8, 512, 4096),
    ("backward fp32 8x1536x2048", "bwd", torch.float32, 8, 1536, 2048),
]
N_STATE = 16

# Instruction classes of the table (SASS opcode stems); the rest count as "other".
CLASSES = {
    "fp32": ("FADD", "FMUL", "FFMA", "FMNMX", "FSEL", "FSETP"),
    "mufu": ("MUFU",),
    "shfl": ("SHFL",),
    "shared": ("LDS", "STS", "LDSM", "STSM"),
    "global": ("LDG", "STG", "LDGSTS", "REDG", "RED", "ATOMG"),
    "barrier": ("BAR",),
}


class _StandInDriver:
    """Just enough of Triton's active driver to compile for ``target`` without a device."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target

    def get_active_torch_device(self):
        return torch.device("cpu")

    def is_active(self):
        return True


def record_launches(kind: str, dtype: torch.dtype, b: int, dim: int, L: int) -> list:
    """The (kernel, grid, args, kwargs) the scan's host code launches for one row."""
    from sciamba.kernels import _triton_scan as ts

    recorded = []

    def recorder(kernel, grid, *args, **kwargs):
        recorded.append((kernel, grid, args, dict(kwargs)))

    saved = ts.launch, ts._compiled
    ts.launch = recorder
    # The host code's own rules (fast-math level, layout pins) as for a CUDA tensor: on these
    # CPU tensors it would otherwise choose the interpreter's settings.
    ts._compiled = lambda u: True
    try:
        g = torch.Generator().manual_seed(0)
        u, delta, z = (torch.randn(b, dim, L, generator=g).to(dtype) for _ in range(3))
        B, C = (torch.randn(b, 1, N_STATE, L, generator=g).to(dtype) for _ in range(2))
        A = -torch.rand(dim, N_STATE, generator=g)
        B, C = ts.float_bc(B, A.dtype), ts.float_bc(C, A.dtype)  # as selective_scan_triton does
        D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g)
        cfg = ts._config_for(u, N_STATE)  # the GPU's tiles (TRITON_INTERPRET is unset above)
        pr = ts._problem(u, A, B, C, cfg)
        _, _, ckpt = ts._forward(u, delta, A, B, C, D, z, bias, None, True, pr, save=True)
        if kind == "bwd":
            recorded.clear()
            prb = ts._problem(u, A, B, C, cfg, backward=True)
            ts._backward(torch.randn_like(u), None, u, delta, A, B, C, D, z, bias, None, True, ckpt, prb)
    finally:
        ts.launch, ts._compiled = saved
    for _, _, _, kwargs in recorded:
        kwargs.setdefault("enable_fp_fusion", True)
    return recorded


def _tool(name: str, *args: str) -> str:
    return subprocess.run([str(TOOLS / name), *args], capture_output=True, text=True, check=True).stdout


_OP = re.compile(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*)")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def loops(sass: str) -> list[list[str]]:
    """Opcodes of each innermost loop (a label, a later branch back to it, no loop inside), largest first."""
    ops, labels = [], {}
    for line in sass.splitlines():
        m = _LABEL.match(line.strip())
        if m:
            labels[m.group(1)] = len(ops)
            continue
        m = _OP.match(line)
        if m:
            ops.append((m.group(1).split(".")[0], m.group(2)))
    spans = []
    for i, (op, rest) in enumerate(ops):
        t = _TARGET.search(rest) if op == "BRA" else None
        if t and t.group(1) in labels and labels[t.group(1)] <= i:
            spans.append((labels[t.group(1)], i))
    inner = [(a, z) for a, z in spans if not any(a <= a2 and z2 <= z and (a2, z2) != (a, z) for a2, z2 in spans)]
    return sorted(([o for o, _ in ops[a:z + 1]] for a, z in inner), key=len, reverse=True)


def classify(opcodes: list[str]) -> dict:
    counts = collections.Counter(opcodes)
    out = {k: sum(counts[o] for o in stems) for k, stems in CLASSES.items()}
    out["other"] = len(opcodes) - sum(out.values())
    out["total"] = len(opcodes)
    return out


def census(recorded: list, dump: Path | None, tag: str) -> list[dict]:
    rows = []
    for kernel, grid, args, kwargs in recorded:
        if kwargs.get("STATE_ONLY") or kwargs.get("CARRY_ONLY"):
            continue  # the range passes of long, narrow problems: not the main loop
        compiled = kernel.warmup(*args, grid=grid, **kwargs)
        with tempfile.TemporaryDirectory() as tmp:
            cubin = Path(tmp) / "k.cubin"
            cubin.write_bytes(compiled.asm["cubin"])
            sass = _tool("nvdisasm", "-c", str(cubin))
            usage = _tool("cuobjdump", "-res-usage", str(cubin))
        regs = re.search(r"REG:(\d+)", usage)
        name = kernel.fn.__name__
        body = loops(sass)
        rows.append(dict(kernel=name, T=kwargs.get("T"), warps=kwargs.get("num_warps"),
                         regs=int(regs.group(1)) if regs else None, shared=compiled.metadata.shared,
                         loop=classify(body[0]) if body else None))
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            stem = f"{tag.replace(' ', '_')}.{name}"
            (dump / f"{stem}.sass").write_text(sass)
            (dump / f"{stem}.ptx").write_text(compiled.asm["ptx"])
            (dump / f"{stem}.ttgir").write_text(compiled.asm["ttgir"])
    return rows


def table(results: list[tuple[str, dict]]) -> str:
    cols = ["total", "fp32", "mufu", "shfl", "shared", "global", "barrier", "other"]
    lines = ["| row | kernel | T | registers | shared B | main loop: " + " / ".join(cols) + " |",
             "|---|---|---|---|---|---|"]
    for name, r in results:
        loop = r["loop"]
        counts = " / ".join(str(loop[c]) for c in cols) if loop else "-"
        lines.append(f"| {name} | {r['kernel']} | {r['T']} | {r['regs']} | {r['shared']} | {counts} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (default 90)")
    ap.add_argument("--dump", type=Path, default=None, help="write each kernel's SASS, PTX and TTGIR here")
    ap.add_argument("--append", action="store_true", help="append the table to RESULTS.md")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    from triton.runtime import driver

    driver.set_active(_StandInDriver(args.arch))
    results = []
    for name, kind, dtype, b, dim, L in ROWS:
        for r in census(record_launches(kind, dtype, b, dim, L), args.dump, name):
            results.append((name, r))
    ptxas = _tool("ptxas", "--version").strip().splitlines()[-1]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n## sass_census.py (sm_{args.arch} SASS compiled without a GPU, {when})\n\n"
            f"triton {triton.__version__}, {ptxas}, torch {torch.__version__}. Static counts of the "
            "scan kernels' main loop (the largest innermost loop: one chunk of T steps of a warp's "
            "tile), by class; "
            "*fp32*: FADD/FMUL/FFMA/FMNMX/FSEL/FSETP.\n\n" + table(results) + "\n")
    print(text)
    if args.append:
        with open(RESULTS, "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
