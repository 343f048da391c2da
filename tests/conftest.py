"""Shared pytest configuration.

Triton kernels are tested on every machine: compiled on a CUDA device, and
through Triton's interpreter on the CPU (``TRITON_INTERPRET=1``). Triton reads
that variable when a kernel is decorated, so it must be set before any
``sciamba.kernels`` module is imported -- hence here, at collection start.
"""

import os

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.cuda.is_available()


if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Plots in tests and examples never open a window.
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Staged real data (research-only UCR sets among them) lives beside the
#: checkout, never inside the package. Tests that need it skip cleanly when absent.
SHARED_DATA = os.environ.get(
    "SCIAMBA_SHARED_DATA", os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
)


@pytest.fixture
def rng():
    """A fresh, unseeded generator: every run draws new inputs (print the seed on failure)."""
    seed = np.random.SeedSequence().entropy % (2**32)
    print(f"rng seed: {seed}")
    return np.random.default_rng(seed)


@pytest.fixture
def best_epoch():
    """The estimators' documented rule (``n_iter_no_change``) as a function of a loss history: the
    last epoch (from 1) whose loss beat the best before it by more than 1e-4 of it. A plain argmin
    disagrees on near-ties (0.95570 then 0.95563 keeps epoch 1)."""

    def rule(losses):
        best, at = float("inf"), 0
        for epoch, loss in enumerate(losses, start=1):
            if at == 0 or loss < best - 1e-4 * abs(best):
                best, at = loss, epoch
        return at

    return rule


@pytest.fixture
def shared_data():
    """Path of ``../shared/data``; skips the test when it is not there."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
