"""Launching Triton kernels with less host time than ``kernel[grid](...)``.

A ``JITFunction`` launch binds every argument, computes Triton's
specialization of each (pointer alignment, integer divisibility) and looks
the compiled kernel up by that key: tens of microseconds per launch, which a
short training step multiplies by every kernel of every layer (a Mamba step
at L = 4096 was host-bound on an H100). :func:`launch` keeps the compiled
kernel that Triton chose, under a key at least as fine as Triton's own
(each tensor's dtype and 16-byte alignment; each integer's value being 1, its
divisibility by 16 and whether it needs 64 bits; every keyword's value), and
launches it directly next time. A new key goes through Triton, which
compiles or finds the kernel as usual, so the cache can only return a kernel
that Triton itself picked for arguments of the same specialization.

Under ``TRITON_INTERPRET=1`` (and if a Triton version does not return its
compiled kernel) every launch goes through Triton unchanged.
"""

from __future__ import annotations

import torch

from ._backends import _interpret_enabled

__all__ = ["launch"]

_CACHE: dict = {}
_INT32 = (-(2**31), 2**31 - 1)
_direct_ok: bool | None = None  # None: not yet known for this Triton


def _spec(args: tuple) -> tuple:
    """What Triton may specialize on, per positional argument (a superset of it)."""
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append((a.dtype, a.data_ptr() & 15 == 0, a.get_device()))
        elif type(a) is int:  # not bool: bools, None and other values enter the key as themselves
            out.append((a == 1, a & 15 == 0, _INT32[0] <= a <= _INT32[1]))
        else:
            out.append(float if isinstance(a, float) else a)  # a float's value is not specialized
    return tuple(out)


def launch(kernel, grid: tuple, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, reusing the compiled kernel Triton chose before.

    Positional arguments are the kernel's leading parameters (tensors,
    integers, None); keyword arguments its constexprs and launch options.
    """
    global _direct_ok
    if _direct_ok is False or _interpret_enabled():
        kernel[grid](*args, **kwargs)
        return
    key = (kernel, tuple(kwargs.items()), _spec(args))
    entry = _CACHE.get(key)
    if entry is not None:
        compiled, tail = entry
        compiled[grid + (1,) * (3 - len(grid))](*args, *tail)  # it indexes all three axes
        return
    compiled = kernel[grid](*args, **kwargs)
    names = getattr(kernel, "arg_names", None)
    if _direct_ok is None:
        _direct_ok = compiled is not None and hasattr(compiled, "__getitem__") and names is not None
    if _direct_ok:
        # The compiled kernel takes every parameter in signature order, constexprs included.
        _CACHE[key] = (compiled, tuple(kwargs[n] for n in names[len(args):]))
