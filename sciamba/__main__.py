"""``python -m sciamba``: the command line (also installed as the ``sciamba`` script).

With no arguments it runs the main job: a Mamba forecast of the shipped
monthly sunspot numbers, checked against naive and AR baselines on a held-back
window, written as a plot and a CSV file. ``sciamba --help`` lists the commands.
"""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
