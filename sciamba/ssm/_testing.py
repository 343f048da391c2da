"""Random test systems for the :mod:`sciamba.ssm` test-suite (and for users' own checks)."""

from __future__ import annotations

import numpy as np

__all__ = ["random_stable_system"]


def random_stable_system(rng: np.random.Generator, n: int, m: int, p: int, *, margin: tuple = (0.1, 1.0)):
    """A random continuous-time system (A, B, C, D) whose eigenvalues have Re <= -margin[0].

    A Gaussian matrix (scaled by 1/sqrt(n) so its spectrum stays O(1)) is shifted left
    until its rightmost eigenvalue sits at a random abscissa in ``-margin``.
    """
    M = rng.normal(size=(n, n)) / np.sqrt(n)
    shift = np.max(np.linalg.eigvals(M).real) + rng.uniform(*margin)
    A = M - shift * np.eye(n)
    return A, rng.normal(size=(n, m)), rng.normal(size=(p, n)), rng.normal(size=(p, m))


def single_thread_torch():
    """Generator body of a pytest fixture: run with one intra-op thread, then restore.

    The ssm tests use matrices of a few states; splitting such tiny kernels over
    threads only adds synchronization, which on a busy machine (a CI runner with
    other jobs) costs orders of magnitude more than the arithmetic.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
