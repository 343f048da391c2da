"""``random_state`` handling shared by the generators."""

from __future__ import annotations

import numbers

import numpy as np


def check_random_state(random_state: object) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from ``None``, an int seed or a generator.

    A legacy :class:`numpy.random.RandomState` (scikit-learn style) seeds a
    new Generator from one draw, so it is advanced but never shared.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state}")
        return np.random.default_rng(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise TypeError(
        "random_state must be None, a non-negative int, a numpy Generator or RandomState, "
        f"got {random_state!r}"
    )


def check_positive(name: str, value: object, *, integer: bool = False) -> None:
    """Raise unless ``value`` is a finite positive number (an int if ``integer``)."""
    kind = numbers.Integral if integer else numbers.Real
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not np.isfinite(value)
        or value <= 0
    ):
        what = "a positive int" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def check_range(name: str, value: object, low: float = 0.0) -> tuple[float, float]:
    """Validate a ``(min, max)`` pair with ``low <= min <= max``."""
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < low or hi < lo:
        raise ValueError(f"{name} must satisfy {low} <= min <= max, got {value!r}")
    return lo, hi
