"""The install layout: `kernels/` and `datasets/` become `sciamba.kernels` and
`sciamba.datasets`, in an editable install and in a built wheel alike."""

from __future__ import annotations

import configparser
import fnmatch
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Where each installed package lives in the repository (setup.cfg `package_dir`).
SOURCE_DIRS = {
    "sciamba": ROOT / "sciamba",
    "sciamba.kernels": ROOT / "kernels",
    "sciamba.datasets": ROOT / "datasets",
}


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _declared_packages() -> list[str]:
    return _setup_cfg()["options"]["packages"].split()


def _source_dir(package: str) -> Path:
    for prefix in sorted(SOURCE_DIRS, key=len, reverse=True):
        if package == prefix or package.startswith(prefix + "."):
            rest = package[len(prefix):].lstrip(".")
            return SOURCE_DIRS[prefix].joinpath(*rest.split(".")) if rest else SOURCE_DIRS[prefix]
    raise AssertionError(package)


def _expected_wheel_files() -> set[str]:
    """Every module and declared data file the wheel must carry, as archive paths."""
    expected = set()
    for package in _declared_packages():
        src = _source_dir(package)
        dest = package.replace(".", "/")
        expected |= {f"{dest}/{p.name}" for p in src.glob("*.py")}
    patterns = _setup_cfg()["options.package_data"]
    for package, globs in patterns.items():
        src, dest = _source_dir(package), package.replace(".", "/")
        for pattern in globs.split():
            for path in src.glob(pattern):
                expected.add(f"{dest}/{path.relative_to(src).as_posix()}")
    return expected


def test_every_package_folder_is_declared():
    """A sub-folder with an `__init__.py` that setup.cfg does not list would be
    silently missing from the wheel."""
    declared = set(_declared_packages())
    for name, src in SOURCE_DIRS.items():
        for init in src.rglob("__init__.py"):
            rel = init.parent.relative_to(src)
            package = ".".join([name, *rel.parts]) if rel.parts else name
            assert package in declared, f"{init.parent} is a package missing from setup.cfg"


def test_package_dir_mapping():
    mapping = _setup_cfg()["options"]["package_dir"]
    pairs = dict(
        (k.strip(), v.strip())
        for k, v in (line.split("=") for line in mapping.strip().splitlines())
    )
    assert pairs == {"sciamba": "sciamba", "sciamba.kernels": "kernels", "sciamba.datasets": "datasets"}


def test_installed_subpackages_resolve_to_repository_dirs():
    """In the editable development install the subpackages come from the root folders."""
    import sciamba
    import sciamba.datasets
    import sciamba.kernels

    if Path(sciamba.__file__).resolve().parent != SOURCE_DIRS["sciamba"]:
        pytest.skip("sciamba is not installed in editable mode from this checkout")
    assert Path(sciamba.kernels.__file__).resolve().parent == SOURCE_DIRS["sciamba.kernels"]
    assert Path(sciamba.datasets.__file__).resolve().parent == SOURCE_DIRS["sciamba.datasets"]


@pytest.mark.slow
def test_built_wheel_contains_and_imports_subpackages(tmp_path):
    """Build a wheel (no network: the installed setuptools), check its contents,
    install it into a bare target folder and import from there."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    wheel_dir = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "-w", str(wheel_dir), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path)
    (wheel,) = wheel_dir.glob("sciamba-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    missing = _expected_wheel_files() - names
    assert not missing, f"wheel lacks {sorted(missing)}"
    assert "sciamba/kernels/__init__.py" in names
    assert "sciamba/datasets/__init__.py" in names
    # Nothing from the repository root layout leaks in as a top-level package.
    top = {n.split("/")[0] for n in names if not n.startswith("sciamba-")}
    assert top == {"sciamba"}, top
    # Research-only UCR data must never ship.
    assert not [n for n in names if fnmatch.fnmatch(n.lower(), "*ucr*") and "/data/" in n]

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    probe = (
        "import sciamba, sciamba.kernels, sciamba.datasets;"
        "print(sciamba.__file__); print(sciamba.kernels.__file__); print(sciamba.datasets.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0]=[{str(target)!r}]; "
                          + _site_paths_code() + probe],
                         check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    files = [Path(p) for p in out.stdout.split()]
    assert all(target in p.parents for p in files), files


def _site_paths_code() -> str:
    # `-S` keeps the editable finder out of the way; the dependencies (numpy...)
    # still come from the running interpreter's site-packages, appended last.
    import site

    paths = [p for p in site.getsitepackages() if os.path.isdir(p)]
    return f"sys.path.extend({paths!r}); "
