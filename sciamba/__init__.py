"""sciamba: Mamba (selective state space) models for scientific time series.

The toolkit is organised like SciPy: one namespace, small subpackages that
each do one job.

========================  ====================================================
``sciamba``               scikit-learn estimators: ``MambaForecaster``,
                          ``MambaClassifier``, ``MambaRegressor``
``sciamba.nn``            the Mamba block and stack in PyTorch, streaming
                          inference, comparison backbones
``sciamba.kernels``       the selective scan: Triton (GPU), chunked PyTorch
                          (CPU) and the plain reference
``sciamba.ssm``           classical state space models: discretization, HiPPO,
                          an LTI layer, conversion with ``scipy.signal``
``sciamba.preprocessing`` ``scipy.signal`` as scikit-learn transformers
``sciamba.datasets``      shipped astronomy and medical series, readers,
                          fetchers and generators
========================  ====================================================

Subpackages and estimators are imported lazily, so ``import sciamba`` is cheap.
Time is the last axis everywhere, as in ``scipy.signal``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_SUBPACKAGES = ("ssm", "nn", "kernels", "preprocessing", "datasets", "estimators")
_ESTIMATORS = ("MambaForecaster", "MambaClassifier", "MambaRegressor")

__all__ = ["__version__", *_SUBPACKAGES, *_ESTIMATORS]


def __getattr__(name: str) -> Any:
    # PEP 562 lazy loading: torch and the kernels load only when first used.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"sciamba.{name}")
    if name in _ESTIMATORS:
        return getattr(importlib.import_module("sciamba.estimators"), name)
    raise AttributeError(f"module 'sciamba' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
