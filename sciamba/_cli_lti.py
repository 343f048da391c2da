"""``sciamba convert-lti``: build the SSM layer of a SciPy system and check it against scipy.signal.

A teaching tool for the LTI interop of :mod:`sciamba.ssm`: the system is given
as the tuple :func:`scipy.signal.lti` takes -- ``(num, den)``,
``(zeros, poles, gain)`` or ``(A, B, C, D)`` -- parsed with
:func:`ast.literal_eval` (literals only, never evaluated as code). The command
prints the continuous and discrete matrices and poles of the layer that
:func:`sciamba.ssm.from_lti` builds, runs an impulse, a step and a random input
through it in float64, and prints the largest difference from
:func:`scipy.signal.dlsim` on the same discretization.
"""

from __future__ import annotations

import argparse
import ast
from typing import TextIO

import numpy as np

from ._cli import CLIError, add_common_options

#: The layer and scipy.signal.dlsim must agree to this relative error (float64).
RTOL = 1e-8

METHODS = ("zoh", "foh", "bilinear", "tustin", "euler", "backward_diff", "impulse")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert-lti",
        help="build the SSM layer of a scipy.signal system and check its response",
        description=(
            "Build sciamba's LTISSM layer from a SciPy system given as a Python tuple, "
            "as scipy.signal.lti takes it: (num, den), (zeros, poles, gain) or (A, B, C, D). "
            "Prints the layer's matrices and poles, and the largest difference between its "
            "response and scipy.signal.dlsim for an impulse, a step and a random input. "
            "Example: sciamba convert-lti \"([1], [1, 0.2, 4])\" --dt 0.05"
        ),
    )
    p.add_argument("system", help='the system as a Python literal, e.g. "([1], [1, 0.2, 4])"')
    p.add_argument("--dt", type=float, required=True, help="sampling interval of the discrete layer")
    p.add_argument("--method", default="zoh", choices=METHODS, help="discretization method (default: zoh)")
    p.add_argument("--discrete", action="store_true",
                   help="the tuple is already a discrete-time system (scipy.signal.dlti) with step --dt")
    p.add_argument("--steps", type=int, default=200, help="length of the test inputs (default: 200)")
    p.add_argument("--plot", default="", metavar="FILE", help="also plot the step responses to FILE")
    add_common_options(p)


def parse_system(text: str) -> tuple:
    """Parse ``text`` as a tuple of 2, 3 or 4 numeric literals or nested lists, safely."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise CLIError(
            f"cannot read the system {text!r} as a Python literal ({type(exc).__name__}); "
            'give a tuple such as "([1], [1, 0.2, 4])"'
        ) from exc
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3, 4):
        raise CLIError(
            f"the system must be a tuple of 2 (num, den), 3 (zeros, poles, gain) or 4 (A, B, C, D) "
            f"parts, got {text!r}"
        )
    parts = []
    for k, part in enumerate(value):
        try:
            arr = np.asarray(part, dtype=complex if len(value) == 3 and k < 2 else float)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"part {k + 1} of the system is not numeric: {part!r}") from exc
        parts.append(arr)
    if len(value) == 3:
        parts[2] = float(np.real(parts[2]))
    return tuple(parts)


def run(args: argparse.Namespace, out: TextIO) -> int:
    if not np.isfinite(args.dt) or args.dt <= 0:
        raise CLIError(f"--dt must be a positive finite number, got {args.dt}")
    if args.steps < 2:
        raise CLIError(f"--steps must be at least 2, got {args.steps}")
    parts = parse_system(args.system)

    import torch
    from scipy import signal

    from sciamba.ssm import from_lti, to_lti

    system = signal.dlti(*parts, dt=args.dt) if args.discrete else signal.lti(*parts)
    ss = system.to_ss()
    p = lambda *a: print(*a, file=out)  # noqa: E731
    kind = "discrete" if args.discrete else "continuous"
    p(f"convert-lti: {kind} {type(system).__name__} with {ss.A.shape[0]} state(s), "
      f"{ss.B.shape[1]} input(s), {ss.C.shape[0]} output(s)")
    layer = from_lti(system, dt=None if args.discrete else args.dt, method=args.method, dtype=torch.float64)
    p(f"  layer     {layer}")
    if args.discrete:
        Ad, Bd, Cd, Dd = ss.A, ss.B, ss.C, ss.D
    else:
        Ad, Bd, Cd, Dd, _ = signal.cont2discrete((ss.A, ss.B, ss.C, ss.D), args.dt, method=args.method)
        A = layer.continuous_matrices()[0].detach().numpy()
        p(f"  continuous poles  {_arr(np.sort_complex(np.linalg.eigvals(A)))}")
    # What the layer actually runs, next to scipy's own discretization of the system.
    mats = [m.detach().numpy() for m in layer.discrete_matrices()]
    p("  discrete matrices the layer runs (x[k+1] = Ad x[k] + Bd u[k], y[k] = Cd x[k] + Dd u[k]):")
    for name, mat in zip(("Ad", "Bd", "Cd", "Dd"), mats):
        p(f"    {name} =\n" + _indent(_arr(mat), 6))
    p(f"  discrete poles    {_arr(np.sort_complex(np.linalg.eigvals(mats[0])))}")
    if not args.discrete:
        same = all(np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-10, atol=1e-12)
                   for a, b in zip(mats, (Ad, Bd, Cd, Dd)))
        p("  scipy.signal.cont2discrete gives " + ("the same matrices" if same else
          "another realization (a change of state basis); the responses are compared below"))

    # Same discrete system through the layer and through scipy.signal.dlsim.
    n_in = ss.B.shape[1]
    L = args.steps
    rng = np.random.default_rng(args.seed)
    inputs = {
        "impulse": np.zeros((n_in, L)),
        "step": np.ones((n_in, L)),
        "random": rng.standard_normal((n_in, L)),
    }
    inputs["impulse"][:, 0] = 1.0
    worst = 0.0
    responses = {}
    for name, u in inputs.items():
        with torch.no_grad():
            y_layer = layer(torch.as_tensor(u[None], dtype=torch.float64))[0].numpy()  # (p L)
        y_ref = signal.dlsim((Ad, Bd, Cd, Dd, args.dt), u.T)[1]  # (L p)
        y_ref = np.atleast_2d(y_ref.T)  # (p L)
        err = float(np.max(np.abs(y_layer - y_ref)))
        scale = float(np.max(np.abs(y_ref))) or 1.0
        worst = max(worst, err / scale)
        responses[name] = (u, y_layer, y_ref)
        p(f"  {name:<8} response   max |layer - scipy.signal.dlsim| = {err:.3e} (relative {err / scale:.3e})")
    # And the round trip: to_lti(layer) must respond like the original.
    back = to_lti(layer)
    back_d = back if back.dt is not None else back.to_discrete(args.dt, method=args.method)
    y_back = signal.dlsim((back_d.A, back_d.B, back_d.C, back_d.D, args.dt), inputs["random"].T)[1]
    y_ref = responses["random"][2]
    rt = float(np.max(np.abs(np.atleast_2d(y_back.T) - y_ref))) / (float(np.max(np.abs(y_ref))) or 1.0)
    p(f"  round trip: to_lti(layer) is a {type(back).__name__}; its random-input response "
      f"differs from the system's by {rt:.3e} (relative)")
    worst = max(worst, rt)
    ok = worst <= RTOL
    p(f"  {'OK' if ok else 'MISMATCH'}: largest relative error {worst:.3e} (tolerance {RTOL:g})")
    if args.plot:
        from ._cli_plot import plot_lti

        u, y_layer, y_ref = responses["step"]
        t = args.dt * np.arange(L)
        plot_lti(args.plot, title=f"step response of {args.system}, dt={args.dt:g} ({args.method})",
                 t=t, u=u[0], y_layer=y_layer, y_scipy=y_ref)
        p(f"  wrote {args.plot}")
    return 0 if ok else 1


def _arr(a) -> str:
    return np.array2string(np.asarray(a), precision=6, suppress_small=True, max_line_width=100)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())
