"""Launching Triton kernels with less host time than ``kernel[grid](...)``.

A ``JITFunction`` launch binds every argument, computes Triton's
specialization of each (pointer alignment, integer divisibility) and looks
the compiled kernel up by that key: tens of microseconds per launch, which a
short training step multiplies by every kernel of every layer (a Mamba step
at L = 4096 was host-bound on an H100). :func:`launch` keeps the compiled
kernel that Triton chose, under a key at least as fine as Triton's own, and
launches it directly next time:

- each positional tensor's dtype and 16-byte alignment (the device is the
  current one, which callers set to the tensors' own); each integer's
  value (Triton specializes on its being 1, its divisibility by 16 and its
  width, all functions of the value, so the key is finer than Triton's: a
  new value goes through Triton once, which finds its own compiled kernel);
  any other positional value (None, a bool) its type and value; floats are
  not specialized by Triton, so only their type is in the key;
- every keyword (the constexprs and launch options) by value and type;
- the current CUDA device and Triton's global compilation settings (debug,
  instrumentation) where this Triton has them.

A cached kernel is started through its launcher (``CompiledKernel.run``)
with the current stream, as Triton's own ``CompiledKernel[grid]`` runner
does, minus that runner's per-call closure and metadata (Triton 3.6 to 3.9
share that calling convention; other versions, or launch hooks set by a
profiler, go through the runner). Both parts are host time a short training
step waits for: on an H100 host (2026-11-24) a launch of the RMSNorm kernel
(10 arguments) through Triton's runner and a per-argument tuple key took
23.5 us, 7.4 us of it building and hashing the key.

:func:`bind` goes one step further for a caller that repeats the same
launches (a streaming step): it returns the cached launcher bound to its
grid, which skips the key altogether, the caller vouching that later
arguments keep the specialization.

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

import os

import torch

from ._backends import _interpret_enabled

try:
    import triton as _triton

    _TRITON_VERSION = tuple(int(p) for p in _triton.__version__.split(".")[:2])
except (ImportError, ValueError):  # pragma: no cover - the kernels need Triton anyway
    _TRITON_VERSION = (0, 0)
# Raw C calls (what torch.cuda.current_device() and Triton's driver wrap).
_current_device = getattr(torch._C, "_cuda_getDevice", lambda: -1)
_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)

__all__ = ["bind", "cdiv", "launch", "next_pow2"]

_CACHE: dict = {}
# Integers enter the key by value, so a program that keeps changing sizes (inference on
# ever new lengths) would grow the cache without bound: it is emptied at this size.
_CACHE_MAX = 4096
_NO_DIRECT: set = set()  # ids of kernels that always go through Triton
_KERNELS: dict = {}  # id -> kernel, for every kernel keyed by id (kept alive, so ids stay unique)
_direct_ok: bool | None = None  # None: not yet known for this Triton and torch
_Tensor = torch.Tensor
# Contraction asked for explicitly unless the user set Triton's default (read once).
_FP_FUSION: bool | None = None if "TRITON_DEFAULT_FP_FUSION" in os.environ else True


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for grids. On the host, ``triton.cdiv`` is a constexpr function (Triton
    3.6 on), which unwraps its arguments at every call (about 1 us a call on an H100 host)."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The least power of two ``>= n`` (1 for ``n <= 1``), as ``triton.next_power_of_2`` without its host cost."""
    return 1 << max(0, (int(n) - 1).bit_length())


def _spec(args: tuple) -> tuple:
    """What Triton may specialize on, one entry per positional argument (a superset of it).

    A tensor: its dtype and its address modulo 16; an ``int``: its value
    (finer than Triton's key, and cheaper to form than the three properties
    Triton derives from it); a ``float``: only that it is one (Triton does not
    specialize its value); anything else (None, a bool, a NumPy scalar) its
    type and value, since ``True == 1`` and ``np.float64(1.0) == 1`` in Python
    but Triton compiles a bool, an integer 1 and a float differently.
    """
    return tuple([(a.dtype, a.data_ptr() & 15) if isinstance(a, _Tensor) else
                  (a if type(a) is int else (float if type(a) is float else (type(a), a))) for a in args])


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


def _direct_runner(compiled):
    """``(launcher, function, packed_metadata)`` of a compiled kernel, or None where unknown.

    Triton 3.6-3.9 start a kernel as ``compiled.run(gx, gy, gz, stream,
    compiled.function, compiled.packed_metadata, launch_metadata, enter_hook,
    exit_hook, *args)``; other versions keep Triton's runner.
    """
    if _TRITON_VERSION < (3, 6) or _TRITON_VERSION >= (4, 0) or _RAW_STREAM is None:
        return None
    try:
        launcher = compiled.run  # a property that loads the module on first use
        function, meta = compiled.function, compiled.packed_metadata
    except AttributeError:
        return None
    return None if function is None else (launcher, function, meta)


def _active(hook) -> bool:
    # Triton 3.6: None or a callable; newer: a HookChain, empty unless a hook was added.
    return hook is not None and bool(getattr(hook, "calls", True))


def _hooks_set() -> bool:
    """Whether a launch hook (a profiler such as proton) wants launch metadata."""
    rt = getattr(_KNOBS, "runtime", None)
    return rt is not None and (_active(getattr(rt, "launch_enter_hook", None))
                               or _active(getattr(rt, "launch_exit_hook", None)))


def _key(kid: int, device: int, args: tuple, kwargs: dict) -> tuple:
    """The cache key of a launch: keywords by name, value and type (Triton tells FLAG=True
    from FLAG=1), positional arguments by :func:`_spec`."""
    return (kid, device, _settings(), *kwargs.items(), *map(type, kwargs.values()), *_spec(args))


def launch(kernel, grid, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, reusing the compiled kernel Triton chose before.

    Positional arguments are the kernel's leading non-constexpr parameters
    (tensors, integers, floats, None); keyword arguments its constexprs and
    launch options. Kernels compile with floating-point contraction (FMA) on
    unless the caller or ``TRITON_DEFAULT_FP_FUSION`` says otherwise: the
    kernels count on it (a scan step is one FMA), it was Triton's default
    through 3.9, and Triton 3.10 turns the default off.
    """
    global _direct_ok
    if _FP_FUSION is not None:
        kwargs.setdefault("enable_fp_fusion", _FP_FUSION)
    kid = id(kernel)  # a JITFunction hashes through Python (its cache key): ids are cheaper
    if _direct_ok is False or kid in _NO_DIRECT:
        kernel[grid](*args, **kwargs)
        return
    device = _current_device() if torch.cuda.is_initialized() else -1
    key = _key(kid, device, args, kwargs)
    entry = _CACHE.get(key)
    if entry is not None:
        compiled, tail, direct = entry
        g = tuple(grid) + (1, 1, 1)  # the launcher takes all three axes
        if direct is not None and not _hooks_set():
            launcher, function, meta = direct
            launcher(g[0], g[1], g[2], _RAW_STREAM(device), function, meta, None, None, None, *args, *tail)
        else:
            compiled[g[:3]](*args, *tail)
        return
    _KERNELS[kid] = kernel
    if _interpret_enabled():  # interpreted kernels: nothing compiled to keep
        _NO_DIRECT.add(kid)
        kernel[grid](*args, **kwargs)
        return
    compiled = kernel[grid](*args, **kwargs)
    if _direct_ok is None:
        _direct_ok = torch.version.hip is None and hasattr(kernel, "arg_names")
        if not _direct_ok:
            return
    if compiled is None or not hasattr(compiled, "__getitem__"):
        return  # nothing to reuse this time (e.g. a cache hook took over): ask Triton again next time
    if not _direct_possible(kernel, len(args), kwargs):
        _NO_DIRECT.add(kid)
        return
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    # The compiled kernel takes every parameter in signature order, constexprs included.
    tail = tuple(kwargs[n] for n in kernel.arg_names[len(args):])
    _CACHE[key] = (compiled, tail, _direct_runner(compiled) if device >= 0 else None)


def bind(kernel, grid, *args, **kwargs):
    """A function ``run(*args)`` that launches ``kernel[grid](*args, **kwargs)`` again, or None.

    For callers that launch the same kernels with the same arguments over and
    over (a streaming step): ``run`` skips :func:`launch`'s key, so the
    positional arguments it is given must have the specialization of the
    ones given here (the same dtypes, 16-byte alignments, integer values,
    None-ness and types), which the caller guarantees; tensors are read by
    their current addresses at each call. Call :func:`launch` with the same
    arguments first (that compiles and caches the kernel). None where
    launches go through Triton's own runner (the interpreter, an untested
    Triton, kernels not launched directly) or the launch is not cached: the
    caller then uses :func:`launch`. A launch hook set later (a profiler)
    sends ``run`` through Triton's runner too, as :func:`launch` does.
    """
    if _FP_FUSION is not None:
        kwargs.setdefault("enable_fp_fusion", _FP_FUSION)
    kid = id(kernel)
    if _direct_ok is not True or kid in _NO_DIRECT or not torch.cuda.is_initialized():
        return None
    device = _current_device()
    entry = _CACHE.get(_key(kid, device, args, kwargs))
    if entry is None or entry[2] is None:
        return None
    compiled, tail, (launcher, function, meta) = entry
    gx, gy, gz = (tuple(grid) + (1, 1, 1))[:3]
    stream = _RAW_STREAM

    def run(*a) -> None:
        if _hooks_set():
            compiled[(gx, gy, gz)](*a, *tail)
        else:
            launcher(gx, gy, gz, stream(device), function, meta, None, None, None, *a, *tail)

    return run
