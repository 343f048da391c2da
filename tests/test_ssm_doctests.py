"""The runnable Examples in every sciamba.ssm docstring."""

import doctest
import importlib

import pytest

MODULES = ["_discretize", "_fftconv", "_hippo", "_layer", "_convert"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"sciamba.ssm.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples in sciamba.ssm.{name}"
    assert result.failed == 0


def test_every_public_name_has_an_example():
    import sciamba.ssm as ssm

    for name in ssm.__all__:
        assert ">>>" in (getattr(ssm, name).__doc__ or ""), f"{name} has no Examples section"
