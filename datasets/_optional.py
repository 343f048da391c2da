"""Clear errors for the optional dependencies (``wfdb``, ``astropy``)."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str, extra: str, caller: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{caller} needs the optional dependency {top!r}, which is not installed. "
            f"Install it with: pip install 'sciamba[{extra}]' (or pip install {top})"
        ) from exc
