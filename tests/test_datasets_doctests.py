"""The docstring examples of sciamba.datasets run and give what they show; the
optional extras stay optional."""

import doctest
import importlib
import subprocess
import sys

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


def test_import_needs_no_optional_extra():
    # wfdb and astropy are imported only when read_wfdb / read_lightcurve run.
    code = (
        "import sys, sciamba.datasets as d; d.load_sunspots(); "
        "print(sorted(m for m in ('wfdb', 'astropy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
