"""Every script in ``examples/`` runs as-is in fast mode and writes its figure, so none can rot.

Each example honours ``SCIAMBA_FAST=1`` (tiny training budgets) and saves its
figure in the current directory (or ``SCIAMBA_OUTPUT_DIR`` when set). The test
runs it in a subprocess from a fresh temporary directory with the Agg backend,
like a user would from a shell, and checks that it exits cleanly and leaves a
non-empty image behind.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
IMAGE_SUFFIXES = {".png", ".pdf", ".svg"}
#: Examples that measure GPU kernels: without CUDA they must say so and exit cleanly.
GPU_ONLY = {"long_sequence_scaling.py"}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    for required in ("forecast_sunspots.py", "classify_ecg.py", "irregular_light_curves.py"):
        assert required in names


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_fast_mode_and_saves_its_figure(script, tmp_path):
    env = dict(os.environ)
    env.update(SCIAMBA_FAST="1", MPLBACKEND="Agg", SCIAMBA_OUTPUT_DIR=str(tmp_path))
    # Examples run from anywhere: a scratch directory, not the repository.
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    if script.name in GPU_ONLY and not _cuda():
        assert "GPU" in proc.stdout + proc.stderr, "a GPU-only example must say that it needs a GPU"
        return
    images = [p for p in tmp_path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    assert images, f"{script.name} wrote no figure; output:\n{proc.stdout[-2000:]}"
    assert all(p.stat().st_size > 1000 for p in images), images
