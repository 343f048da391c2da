"""The docstring examples of sciamba.datasets run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "sciamba.datasets._base",
    "sciamba.datasets._loaders",
    "sciamba.datasets._ucr",
    "sciamba.datasets._wfdb",
    "sciamba.datasets._fits",
    "sciamba.datasets._fetch",
    "sciamba.datasets._ecg_model",
    "sciamba.datasets._oscillators",
    "sciamba.datasets._light_curves",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_name_has_an_example():
    datasets = importlib.import_module("sciamba.datasets")
    for name in datasets.__all__:
        doc = getattr(datasets, name).__doc__ or ""
        assert "Examples\n" in doc and ">>>" in doc, name
