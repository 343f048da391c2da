"""``sciamba info``: versions, the compute device and which selective-scan backends run here."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from typing import TextIO

from ._version import __version__

_PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "triton",
    "scikit-learn",
    "xarray",
    "pandas",
    "tqdm",
    "matplotlib",
    "netCDF4",
    "wfdb",
    "astropy",
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="versions, device and available kernel backends",
        description=(
            "Print the versions of sciamba and its dependencies, the compute device, "
            "and which selective-scan backends can run here (Triton compiled on CUDA, "
            "Triton's interpreter on CPU with TRITON_INTERPRET=1, and PyTorch)."
        ),
    )
    p.add_argument("-q", "--quiet", action="store_true", help="accepted for symmetry; info is always short")


def package_versions() -> dict[str, str]:
    """Installed version of each dependency, or ``"not installed"``."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def backend_lines(device: str) -> list[str]:
    """One line per selective-scan backend on ``device``: usable, or why not."""
    from sciamba.kernels import available_backends

    report = available_backends(device)
    lines = [f"  {name:<17} yes" + ("  (auto)" if name == report.auto else "") for name in report.available]
    lines += [f"  {name:<17} no: {why}" for name, why in report.unavailable.items()]
    return lines


def run(args: argparse.Namespace, out: TextIO) -> int:
    import torch

    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"sciamba {__version__}")
    p(f"python        {platform.python_version()} ({sys.executable})")
    p(f"platform      {platform.platform()}")
    for name, version in package_versions().items():
        p(f"{name:<13} {version}")
    p("")
    p(f"torch threads      {torch.get_num_threads()}")
    cuda = torch.cuda.is_available()
    if cuda:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        p(f"device             cuda ({', '.join(names)}); CUDA {torch.version.cuda}")
    else:
        p("device             cpu (no CUDA device visible to torch)")
    p(f"TRITON_INTERPRET   {os.environ.get('TRITON_INTERPRET', '(unset)')}")
    devices = ["cuda", "cpu"] if cuda else ["cpu"]
    for device in devices:
        p(f"selective-scan backends for {device} tensors:")
        for line in backend_lines(device):
            p(line)
    return 0
