"""Input checks shared by the :mod:`sciamba.ssm` modules.

Every public function of the subpackage funnels its arguments through these
helpers, so a bad input gets the same clear message wherever it enters.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = [
    "METHODS",
    "DIAGONAL_METHODS",
    "check_method",
    "check_dt",
    "check_finite",
    "as_tensor",
]

#: Discretization methods of :func:`scipy.signal.cont2discrete`, with their aliases.
METHODS = (
    "zoh",
    "foh",
    "impulse",
    "gbt",
    "bilinear",
    "tustin",
    "euler",
    "forward_diff",
    "backward_diff",
)

#: Methods that act mode-by-mode on a diagonal system (the generalized bilinear family and ZOH).
DIAGONAL_METHODS = (
    "zoh",
    "gbt",
    "bilinear",
    "tustin",
    "euler",
    "forward_diff",
    "backward_diff",
)

# gbt parameter of each named member of the generalized bilinear family.
_GBT_ALPHA = {
    "bilinear": 0.5,
    "tustin": 0.5,
    "euler": 0.0,
    "forward_diff": 0.0,
    "backward_diff": 1.0,
}


def check_method(method: str, alpha: float | None, allowed=METHODS) -> tuple[str, float | None]:
    """Normalize a discretization method name.

    Returns ``("zoh"|"foh"|"impulse"|"gbt", alpha)``: the named members of the
    generalized bilinear family become ``"gbt"`` with their ``alpha``.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, one of {allowed}; got {type(method).__name__}")
    key = method.lower()
    if key not in allowed:
        raise ValueError(f"unknown discretization method {method!r}; choose one of {allowed}")
    if key == "gbt":
        if alpha is None:
            raise ValueError("method='gbt' needs alpha in [0, 1] (0: euler, 0.5: bilinear, 1: backward_diff)")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be a real number in [0, 1] for method='gbt'; got {alpha!r}")
        return "gbt", float(alpha)
    if key in _GBT_ALPHA:
        return "gbt", _GBT_ALPHA[key]
    return key, None


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` if the array or tensor ``x`` holds NaN or infinity."""
    if isinstance(x, torch.Tensor):
        ok = bool(torch.isfinite(x.detach()).all())
    else:
        ok = bool(np.all(np.isfinite(x)))
    if not ok:
        raise ValueError(f"{name} contains NaN or infinite values; all entries must be finite")


def check_dt(dt, name: str = "dt"):
    """Check a sampling interval (scalar, array or tensor): real, finite and > 0.

    Returns it unchanged (as a float when it was a Python or NumPy scalar).
    """
    if dt is None:
        raise ValueError(f"{name} is required (a positive, finite sampling interval)")
    if isinstance(dt, bool):
        raise TypeError(f"{name} must be a positive real number or array of them, not a bool")
    if isinstance(dt, torch.Tensor):
        if dt.is_complex() or dt.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor; got dtype {dt.dtype}")
        d = dt.detach()
        if not bool(torch.isfinite(d).all()):
            raise ValueError(f"{name} must be finite; got non-finite values")
        if not bool((d > 0).all()):
            raise ValueError(f"{name} must be > 0; got a minimum of {float(d.min())}")
        return dt
    try:
        arr = np.asarray(dt)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be a positive real number; got {type(dt).__name__}") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a positive real number or array of them; got {dt!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {dt!r}")
    if not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0; got {dt!r}")
    return float(arr) if arr.ndim == 0 else arr


def as_tensor(name: str, x, dtype=None, device=None) -> torch.Tensor:
    """Convert ``x`` (array-like or tensor) to a tensor, with a clear error for non-numeric input."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array or tensor; got {type(x).__name__}") from exc
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be numeric; got an array of dtype {arr.dtype}")
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        t = torch.as_tensor(arr)
    if t.dtype == torch.bool or not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.get_default_dtype())
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype if dtype is not None else t.dtype, device=device)
    return t
