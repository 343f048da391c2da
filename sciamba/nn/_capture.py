"""The side stream on which CUDA graphs of :mod:`sciamba.nn` are warmed up and captured."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

__all__ = ["capture_stream", "on_capture_stream"]


@functools.lru_cache(maxsize=None)
def _stream(index: int) -> torch.cuda.Stream:
    return torch.cuda.Stream(device=index)


def capture_stream(device: torch.device) -> torch.cuda.Stream:
    """One side stream per device, shared by every warm-up and capture.

    Capture must run off the default stream, and PyTorch keeps a cuBLAS
    workspace (tens of MB on an H100) for every stream a product ever ran on,
    for the life of the process: a fresh stream per warm-up call and per
    capture leaked 64 MB each (measured: a graphed training step of
    ``Mamba(256, 4)`` left 256 MB allocated after it was deleted).
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _stream(index)


@contextlib.contextmanager
def on_capture_stream(device: torch.device) -> Iterator[torch.cuda.Stream]:
    """Run the block on :func:`capture_stream`, after the current stream's work and before its next.

    Where warm-up calls run: a capture requires its warm-up off the default
    stream.
    """
    side, current = capture_stream(device), torch.cuda.current_stream(device)
    side.wait_stream(current)
    try:
        with torch.cuda.stream(side):
            yield side
    finally:
        current.wait_stream(side)
