"""Evidence that it is Mamba: selective copying, where a time-invariant SSM fails (Gu & Dao 2023, sec. 4.1)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mamba_clearly_beats_s4d_on_selective_copying(rng):
    """A small instance on the CPU: same width, same training; Mamba learns it, S4D does not."""
    # 600 steps: at 400 one seed in a review run left Mamba at 0.85 vs S4D 0.67
    # (gap 0.186 < 0.2); the margin below is kept, the training made less marginal.
    # Sequences of 64: at 32, S4D's fixed kernels reach 0.70-0.78 (six seeds, and 0.784
    # against Mamba's 0.979 in a CI run, gap 0.195); at 64 they reach 0.61-0.65 while
    # Mamba stays at 0.96-1.00 (2026-11-25, five seeds each): a longer sequence is where
    # an input-independent convolution has to recall more positions, the paper's point.
    ex = _example("selective_copying")
    cfg = argparse.Namespace(
        seq_len=64, n_tokens=4, vocab=8, d_model=32, d_state=16, n_layers=2,
        steps=600, batch=64, lr=1e-2, n_test=512, eval_every=600,
    )
    seed = int(rng.integers(2**31))
    # Tiny tensors gain nothing from a second thread, and on a shared machine the
    # OpenMP spin-waits of two threads cost several times the work itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        acc = {name: ex.train(name, cfg, torch.device("cpu"), seed)["accuracy"] for name in ("mamba", "s4d")}
    finally:
        torch.set_num_threads(threads)
    assert acc["mamba"] > 0.8, acc
    assert acc["mamba"] - acc["s4d"] > 0.2, acc


# The examples themselves (selective_copying.py, long_sequence_scaling.py) run in
# fast mode in tests/test_examples.py, with every other example.


def test_bench_scaling_without_gpu_says_so(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("measures for real on a GPU; run benchmarks/bench_scaling.py directly")
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scaling.py"), "--results", str(tmp_path / "r.md")],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0 and "needs a CUDA device" in res.stdout
    assert not (tmp_path / "r.md").exists()
