"""Launching Triton kernels with less host time than ``kernel[grid](...)``.

A ``JITFunction`` launch binds every argument, computes Triton's
specialization of each (pointer alignment, integer divisibility) and looks
the compiled kernel up by that key: tens of microseconds per launch, which a
short training step multiplies by every kernel of every layer (a Mamba step
at L = 4096 was host-bound on an H100). :func:`launch` keeps the compiled
kernel that Triton chose, under a key at least as fine as Triton's own, and
launches it directly next time:

- each positional tensor's dtype, 16-byte alignment and device; each
  integer's being 1, its divisibility by 16 and its width (32, 64 bits or
  unsigned); any other positional value (None, bool) itself; floats are not
  specialized by Triton;
- every keyword (the constexprs and launch options) by value;
- the current CUDA device and Triton's global compilation settings (debug,
  instrumentation) where this Triton has them.

A new key goes through Triton, which compiles or finds the kernel as usual,
so the cache only ever returns a kernel that Triton itself picked for
arguments of the same specialization. Kernels taking a constexpr
positionally, kernels with pre-run hooks, ROCm (whose backend also keys on
buffer sizes) and Triton's interpreter always go through Triton, as does
everything if Triton does not return its compiled kernel. Like Triton's own
path this assumes the kernels read no mutable module globals (ours read
none).
"""

from __future__ import annotations

import torch

from ._backends import _interpret_enabled

__all__ = ["launch"]

_CACHE: dict = {}
_INT32 = (-(2**31), 2**31 - 1)
_INT64_MAX = 2**63 - 1
_NO_DIRECT: set = set()  # kernels that always go through Triton
_direct_ok: bool | None = None  # None: not yet known for this Triton and torch


def _spec(args: tuple) -> tuple:
    """What Triton may specialize on, per positional argument (a superset of it)."""
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append((a.dtype, a.data_ptr() & 15 == 0, a.get_device()))
        elif type(a) is int:  # not bool: bools, None and other values enter the key as themselves
            width = 0 if _INT32[0] <= a <= _INT32[1] else (1 if a <= _INT64_MAX else 2)
            out.append((a == 1, a & 15 == 0, width))
        else:
            out.append(float if isinstance(a, float) else a)  # a float's value is not specialized
    return tuple(out)


try:
    from triton import knobs as _KNOBS
except ImportError:  # a Triton without knobs: only its environment variables
    _KNOBS = None


def _settings() -> tuple:
    """Triton's global compilation settings that select a different kernel (absent ones: None)."""
    if _KNOBS is None:
        return ()
    rt, comp = getattr(_KNOBS, "runtime", None), getattr(_KNOBS, "compilation", None)
    return (getattr(rt, "debug", None), getattr(rt, "add_stages_inspection_hook", None),
            getattr(comp, "instrumentation_mode", None), getattr(comp, "fpsan_homomorphic_casts", None))


def _direct_possible(kernel, n_positional: int, kwargs: dict) -> bool:
    """Whether launches of ``kernel`` with this call's layout may skip Triton's binder."""
    params = getattr(kernel, "params", None)
    if params is None or getattr(kernel, "pre_run_hooks", None):
        return False
    if any(getattr(p, "is_constexpr", True) for p in params[:n_positional]):
        return False  # a positional constexpr: its value is not in our key
    return not any(isinstance(v, torch.Tensor) for v in kwargs.values())


def launch(kernel, grid, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, reusing the compiled kernel Triton chose before.

    Positional arguments are the kernel's leading non-constexpr parameters
    (tensors, integers, floats, None); keyword arguments its constexprs and
    launch options.
    """
    global _direct_ok
    if _direct_ok is False or kernel in _NO_DIRECT or _interpret_enabled():
        kernel[grid](*args, **kwargs)
        return
    grid = tuple(grid)
    device = torch.cuda.current_device() if torch.cuda.is_initialized() else -1
    key = (kernel, device, _settings(), tuple(kwargs.items()), _spec(args))
    entry = _CACHE.get(key)
    if entry is not None:
        compiled, tail = entry
        compiled[grid + (1,) * (3 - len(grid))](*args, *tail)  # it indexes all three axes
        return
    compiled = kernel[grid](*args, **kwargs)
    if _direct_ok is None:
        _direct_ok = torch.version.hip is None and hasattr(kernel, "arg_names")
        if not _direct_ok:
            return
    if compiled is None or not hasattr(compiled, "__getitem__"):
        return  # nothing to reuse this time (e.g. a cache hook took over): ask Triton again next time
    if not _direct_possible(kernel, len(args), kwargs):
        _NO_DIRECT.add(kernel)
        return
    # The compiled kernel takes every parameter in signature order, constexprs included.
    _CACHE[key] = (compiled, tuple(kwargs[n] for n in kernel.arg_names[len(args):]))
