"""The Examples sections of every public name in sciamba.nn run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_norm", "_selective_copying", "_transformer", "_lstm", "_mamba", "_s4d", "_describe", "_factory",
           "_graphed_step", "_graphed_train"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"sciamba.nn.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples in sciamba.nn.{name}"
    assert result.failed == 0
