"""The ``sciamba`` command line: argument parsing, dispatch and error reporting.

Each sub-command lives in its own module (``_cli_forecast``, ``_cli_classify``,
``_cli_lti``, ``_cli_info``) with an ``add_parser(subparsers)`` that declares
its options and a ``run(args, out)`` that does the work and returns an exit
status. Heavy imports (torch, the estimators) happen inside ``run``, so
``sciamba --help`` answers at once.

Bad input never ends in a traceback: the sub-commands raise :class:`CLIError`
(or the library raises ``ValueError``/``TypeError``/``OSError``/``ImportError``
with a message that says what to fix) and :func:`main` prints it as one line on stderr with
exit status 2. Set ``SCIAMBA_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence, TextIO

from ._version import __version__

__all__ = ["CLIError", "build_parser", "fast_mode", "main"]

#: Exit status of a run that failed because of its input (argparse uses 2 too).
EXIT_BAD_INPUT = 2

PROG = "sciamba"


class CLIError(Exception):
    """Bad command-line input; :func:`main` prints the message as one line and exits with 2."""


def _subcommand_modules():
    # Imported lazily so that a typo in one command never breaks the others' --help.
    from . import _cli_classify, _cli_forecast, _cli_info, _cli_lti

    return {
        "forecast": _cli_forecast,
        "classify": _cli_classify,
        "convert-lti": _cli_lti,
        "info": _cli_info,
    }


def fast_mode() -> bool:
    """``SCIAMBA_FAST=1``: tiny training budgets, for the test suite and smoke runs."""
    return os.environ.get("SCIAMBA_FAST", "0") not in ("", "0")


def add_common_options(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
    """Options every sub-command shares: ``--quiet`` and, for training commands, ``--seed``."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the final report (no progress bars)"
    )
    if training:
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="random seed: same seed, same data split and same model on CPU (default: 0)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``sciamba`` argument parser with all its sub-commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Mamba (selective state space) models for scientific time series. "
            "Without a command, runs `sciamba forecast` on the shipped monthly sunspot numbers."
        ),
        epilog="Run `sciamba COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules().values():
        module.add_parser(subparsers)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """``sciamba`` and ``sciamba --quiet ...`` mean ``sciamba forecast ...``."""
    if not argv:
        return ["forecast"]
    first = argv[0]
    if first.startswith("-") and first not in ("-h", "--help", "--version"):
        return ["forecast", *argv]
    return argv


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the ``sciamba`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; default ``sys.argv[1:]``. An empty
        list runs the default main job, ``sciamba forecast`` on monthly sunspots.
    stdout : text stream, optional
        Where the report goes (default ``sys.stdout``); errors always go to ``sys.stderr``.

    Returns
    -------
    int
        0 on success, 2 on bad input (with a one-line message on stderr).

    Examples
    --------
    >>> from sciamba.__main__ import main
    >>> main(["convert-lti", "([1.0], [1.0, 1.0])", "--dt", "0.1", "--quiet"])  # doctest: +ELLIPSIS
    convert-lti ...
    0
    """
    out = sys.stdout if stdout is None else stdout
    args_list = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse already printed usage and the message
        return int(exc.code or 0)
    module = _subcommand_modules()[args.command]
    try:
        return int(module.run(args, out) or 0)
    except BrokenPipeError:
        # `sciamba info | head`: the reader left; nothing more to say.
        return 0
    except (CLIError, ValueError, TypeError, OSError, ImportError) as exc:
        if os.environ.get("SCIAMBA_DEBUG", "0") not in ("", "0"):
            raise
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
