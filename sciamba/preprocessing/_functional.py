"""Glue that turns a transformer into its functional equivalent.

Each function of the public API (``butterworth(x, ...)``) builds the matching
transformer, validates its parameters with the same ``_parameter_constraints``
and runs the same ``_transform_series``: one implementation serves both, and
the functions take an ``axis`` as ``scipy.signal`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_float_series

__all__: list[str] = []


def run_as_function(
    estimator: Any, x: Any, axis: int, times: Any = None, name: str | None = None
) -> tuple[np.ndarray, Any]:
    """Validate, move ``axis`` last, transform, move it back; return ``(out, new_axis)``."""
    estimator._validate_params()
    name = name or type(estimator).__name__
    arr = np.asarray(x)
    if not -arr.ndim <= axis < max(arr.ndim, 1):
        raise ValueError(f"{name}: axis={axis} is out of range for an array of {arr.ndim} dims")
    xt = as_float_series(arr, axis=axis, name=name, allow_nan=estimator._allow_nan)
    out, new_axis = estimator._transform_series(xt, times)
    return np.moveaxis(out, -1, axis), new_axis
