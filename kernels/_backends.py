"""Which selective-scan backends can run here, and which one ``"auto"`` picks."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os

import torch

__all__ = ["BACKENDS", "BackendReport", "available_backends", "on_device", "resolve_backend"]

#: Names accepted by the ``backend=`` argument.
BACKENDS = ("auto", "torch", "triton")


@functools.cache
def _triton_importable() -> str | None:
    """None when Triton and our Triton kernels can be imported, else the reason.

    Cached: installed packages do not change within a process, and the
    module search costs ~80 us, too much for every scan call.
    """
    if importlib.util.find_spec("triton") is None:
        return "the 'triton' package is not installed (pip install triton)"
    if importlib.util.find_spec(f"{__package__}._triton_scan") is None:
        return "the Triton selective-scan kernels (sciamba.kernels._triton_scan) are not built into this install"
    return None


def _interpret_enabled() -> bool:
    # Triton reads the variable when a kernel is decorated, i.e. at import.
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def grad_needed(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will record an op on ``tensors`` (None entries ignored).

    The fused ops take their autograd.Function only then: without a gradient
    they skip saving checkpoints and the Function's overhead.
    """
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@dataclasses.dataclass(frozen=True)
class BackendReport:
    """What :func:`available_backends` found.

    Attributes
    ----------
    device : str
        The device the report is for (``"cpu"``, ``"cuda:0"``...).
    auto : str
        The backend ``backend="auto"`` uses for tensors on ``device``.
    available : tuple of str
        Usable backends on ``device``: ``"triton"`` (compiled, CUDA),
        ``"triton-interpret"`` (Triton's interpreter on CPU tensors,
        ``TRITON_INTERPRET=1``) and ``"torch"`` (always).
    unavailable : dict
        Backend name -> why it cannot run on ``device``.

    Examples
    --------
    >>> from sciamba.kernels import available_backends
    >>> report = available_backends("cpu")
    >>> "torch" in report, report.device
    (True, 'cpu')
    >>> "triton" in report.unavailable
    True
    """

    device: str
    auto: str
    available: tuple[str, ...]
    unavailable: dict[str, str]

    def __contains__(self, name: str) -> bool:
        return name in self.available


def available_backends(device: str | torch.device | None = None) -> BackendReport:
    """Report the selective-scan backends usable on ``device``.

    Parameters
    ----------
    device : str or torch.device, optional
        Device of the tensors you will pass. Default: ``"cuda"`` when a CUDA
        device is present, else ``"cpu"``.

    Returns
    -------
    BackendReport
        ``.available`` lists the usable backends, ``.auto`` the one that
        ``backend="auto"`` picks (Triton on CUDA, torch otherwise) and
        ``.unavailable`` says why the others cannot run.

    Examples
    --------
    >>> from sciamba.kernels import available_backends
    >>> report = available_backends("cpu")
    >>> report.auto
    'torch'
    >>> "torch" in report.available
    True
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"not a torch device: {device!r} (e.g. 'cpu', 'cuda', 'cuda:1')") from exc
    available = []
    unavailable = {}
    triton_missing = _triton_importable()
    if device.type == "cuda":
        if triton_missing is not None:
            unavailable["triton"] = triton_missing
        elif _interpret_enabled():
            unavailable["triton"] = "TRITON_INTERPRET=1 is set, so Triton runs interpreted, not compiled"
            available.append("triton-interpret")
        else:
            available.append("triton")
    else:
        unavailable["triton"] = f"compiled Triton needs CUDA tensors, not {device.type!r}"
        if triton_missing is not None:
            unavailable["triton-interpret"] = triton_missing
        elif device.type != "cpu":
            unavailable["triton-interpret"] = "the Triton interpreter runs on CPU tensors only"
        elif not _interpret_enabled():
            unavailable["triton-interpret"] = (
                "set TRITON_INTERPRET=1 before importing sciamba.kernels to run Triton on the CPU"
            )
        else:
            available.append("triton-interpret")
    available.append("torch")
    return BackendReport(str(device), _auto(device), tuple(available), unavailable)


def _auto(device: torch.device) -> str:
    """What ``backend="auto"`` runs on ``device``: compiled Triton on CUDA, torch otherwise."""
    if device.type == "cuda" and _triton_importable() is None and not _interpret_enabled():
        return "triton"
    return "torch"


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map a user's ``backend=`` to ``"torch"`` or ``"triton"``, or raise."""
    if backend == "torch":
        return backend
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}")
    if backend == "auto":
        return _auto(device)  # the report's rule, without building the report
    if _triton_importable() is None and (device.type == "cuda" or (device.type == "cpu" and _interpret_enabled())):
        return backend
    report = available_backends(device)
    reasons = "; ".join(f"{k}: {v}" for k, v in report.unavailable.items())
    raise ValueError(
        f"backend='triton' cannot run on {device.type} tensors here ({reasons}). "
        "Move the tensors to a CUDA device, set TRITON_INTERPRET=1 before importing "
        "sciamba.kernels (slow, for testing), or use backend='torch'."
    )


def on_device(x: torch.Tensor):
    """Make ``x``'s GPU the current one while kernels are launched for it.

    Triton launches on the current CUDA device; a no-op (no context switch)
    for CPU tensors and tensors already on the current device.
    """
    if x.device.type == "cuda" and x.device.index != torch.cuda.current_device():
        return torch.cuda.device(x.device)
    return contextlib.nullcontext()


def refuse_create_graph(what: str, alternative: str) -> None:
    """Raise when a backward that is not itself differentiable runs under ``create_graph=True``.

    The fused backward passes compute gradients with kernels (or in-place
    ops) that record no graph; ``torch.autograd.function.once_differentiable``
    catches only gradients that themselves require grad, and a second
    derivative through the saved inputs would otherwise come out silently
    wrong. Autograd runs a backward with grad mode on exactly when
    ``create_graph=True``.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"{what} is differentiable once; create_graph=True (higher derivatives) is not "
            f"supported through it: {alternative}"
        )


def check_buffer(name: str, buf: torch.Tensor | None, shape: tuple | None, dtype: torch.dtype) -> None:
    """Refuse a caller's output buffer unless it is a contiguous ``dtype`` tensor of ``shape``.

    ``shape`` None: no buffer may be given. The kernels add into such buffers
    with flat, contiguous offsets, so any other layout would be misread.
    """
    if shape is None:
        if buf is not None:
            raise ValueError(f"{name} was given, but there is no such gradient here (leave it out)")
    elif buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype or not buf.is_contiguous():
        raise ValueError(f"{name} must be a contiguous {dtype} tensor of shape {tuple(shape)}")
