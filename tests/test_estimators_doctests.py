"""The runnable Examples in the sciamba.estimators docstrings."""

import doctest
import importlib

import pytest

MODULES = ["_classifier", "_regressor", "_forecaster", "_augment", "_network"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"sciamba.estimators.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples in sciamba.estimators.{name}"
    assert result.failed == 0


def test_every_public_name_has_an_example():
    import sciamba.estimators as est

    for name in est.__all__:
        assert ">>>" in (getattr(est, name).__doc__ or ""), f"{name} has no Examples section"
