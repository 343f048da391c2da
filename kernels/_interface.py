"""Public ``selective_scan``: input validation, normalization and backend dispatch.

Every backend receives the same normalized inputs (see :func:`validate_scan_inputs`),
so shape and dtype rules live here and nowhere else.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._backends import resolve_backend
from ._math import compute_dtype

__all__ = ["ScanInputs", "selective_scan", "validate_scan_inputs", "validate_step_inputs"]

#: Activation dtypes accepted for ``u``, ``delta`` and ``z``.
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class ScanInputs(NamedTuple):
    """Validated scan inputs, all contiguous and on ``u``'s device.

    ``u``, ``delta``, ``z``: ``(b, d, L)`` in one dtype. ``A``, ``D``,
    ``delta_bias``, ``initial_state``: the compute dtype (float32, or float64
    for float64 ``u``). ``B``, ``C``: ``(b, G, N, L)`` (a 3-D ``(b, N, L)``
    input becomes ``G = 1``) in ``u``'s dtype or the compute dtype, or
    time-invariant ``(d, N)`` in the compute dtype.
    """

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None
    initial_state: torch.Tensor | None


def _check_tensor(name: str, x: object, op: str = "selective scans") -> None:
    """A real floating-point tensor (``op`` names what is real-only in the message)."""
    # One attribute of the dtype for the usual case: these checks run on every call, and
    # the scan of a short sequence (or one recurrent step) takes less GPU time than they
    # take host time.
    if isinstance(x, torch.Tensor) and x.dtype.is_floating_point:
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} is complex ({x.dtype}); only real {op} are supported")
    raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it with .float()")


def _check_device(name: str, x: torch.Tensor | None, device: torch.device, ref: str = "u") -> None:
    """``x`` on ``device``, the device of the input named ``ref``."""
    if x is not None and x.device != device:
        raise ValueError(f"{name} is on {x.device} but {ref} is on {device}; move all inputs to one device")


def _check_shape(name: str, x: torch.Tensor, shape: tuple[int, ...], names: str) -> None:
    if x.shape != shape:  # torch.Size compares with a tuple as a tuple
        raise ValueError(f"{name} must have shape {names} = {shape}, got {tuple(x.shape)}")


def _as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype``, contiguous; no dispatch when it already is (this runs on every call)."""
    if x.dtype != dtype:
        x = x.to(dtype)
    return x if x.is_contiguous() else x.contiguous()


def _weight(name: str, x: torch.Tensor | None, shape: tuple[int, ...], names: str, cdt: torch.dtype, device):
    """A parameter-like input: check shape and device, cast to the compute dtype."""
    if x is None:
        return None
    _check_tensor(name, x)
    _check_device(name, x, device)
    _check_shape(name, x, shape, names)
    return _as(x, cdt)


def _activation_dtype_check(name: str, x: torch.Tensor, dtype: torch.dtype) -> None:
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but u has {dtype}; u, delta and z must share one dtype")


def _shape_error(name: str, x: torch.Tensor, forms: str) -> ValueError:
    return ValueError(f"{name} must have one of the shapes {forms}; got {tuple(x.shape)}")


def _scan_forms(b: int, d: int, N: int, L: int) -> str:
    # Formatted only for an error: an f-string of tuples on every call cost ~2 us of host time.
    return f"(dim, N) = {(d, N)}, (batch, N, L) = {(b, N, L)} or (batch, G, N, L)"


def _step_forms(b: int, d: int, N: int) -> str:
    return f"(batch, N) = {(b, N)}, (batch, G, N) or (dim, N) = {(d, N)}"


def _grouped(name: str, x: torch.Tensor, shape_error, b: int, d: int, N: int, tail: tuple, in_dtype, cdt):
    """``x`` of shape ``(b, G, N, *tail)``: check it and fix its dtype (``shape_error()``: what to raise)."""
    G = x.shape[1]
    if x.shape[0] != b or x.shape[2] != N or x.shape[3:] != tail or G == 0:
        raise shape_error()
    if d % G != 0:
        raise ValueError(
            f"{name} has G={G} groups but dim={d} is not divisible by G; channel c uses group c // (dim // G)"
        )
    return _as(x, x.dtype if x.dtype in (in_dtype, cdt) else cdt)


def _scan_matrix(name: str, x, b: int, d: int, N: int, L: int, in_dtype, cdt, device) -> torch.Tensor:
    """B or C of the scan: ``(d, N)`` stays, ``(b, N, L)`` becomes ``(b, 1, N, L)``."""
    _check_tensor(name, x)
    _check_device(name, x, device)
    nd, given = x.dim(), x

    def error():  # the message names the shape the caller gave
        return _shape_error(name, given, _scan_forms(b, d, N, L))

    if nd == 2:
        if x.shape != (d, N):
            raise error()
        return _as(x, cdt)
    if nd == 3:
        x = x.unsqueeze(1)
    elif nd != 4:
        raise error()
    return _grouped(name, x, error, b, d, N, (L,), in_dtype, cdt)


def _step_matrix(name: str, x, b: int, d: int, N: int, in_dtype, cdt, device) -> torch.Tensor:
    """B or C of one step, always returned grouped as ``(b, G, N)``.

    A 2-D input is ``(batch, N)`` (mamba_ssm's convention), or a
    time-invariant ``(dim, N)`` when its shape says so unambiguously
    (``batch != dim``); the latter is the grouped form with ``G = dim``.
    """
    _check_tensor(name, x)
    _check_device(name, x, device)
    nd, given = x.dim(), x

    def error():  # the message names the shape the caller gave
        return _shape_error(name, given, _step_forms(b, d, N))

    if nd == 2:
        if x.shape == (b, N):
            x = x.unsqueeze(1)
        elif x.shape == (d, N):
            x = x.unsqueeze(0).expand(b, d, N)
        else:
            raise error()
    elif nd != 3:
        raise error()
    return _grouped(name, x, error, b, d, N, (), in_dtype, cdt)


def validate_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None) -> ScanInputs:
    """Check shapes, dtypes and devices of scan inputs and normalize them.

    Raises
    ------
    TypeError
        Non-tensor, integer, complex or unsupported dtypes, or ``delta``/``z``
        dtype different from ``u``'s.
    ValueError
        Shape mismatches, ``dim % G != 0``, inputs on different devices, or
        an empty time axis.
    """
    _check_tensor("u", u)
    if u.dtype not in INPUT_DTYPES:
        raise TypeError(f"u has dtype {u.dtype}; supported are float32, float16, bfloat16 and float64")
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, dim, L), got {tuple(u.shape)}")
    b, d, L = u.shape
    if L == 0:
        raise ValueError("the sequence is empty (L = 0); the scan needs at least one time step")
    device, in_dtype, cdt = u.device, u.dtype, compute_dtype(u.dtype)
    _check_tensor("delta", delta)
    _check_device("delta", delta, device)
    _check_shape("delta", delta, (b, d, L), "(batch, dim, L)")
    _activation_dtype_check("delta", delta, in_dtype)
    if z is not None:
        _check_tensor("z", z)
        _check_device("z", z, device)
        _check_shape("z", z, (b, d, L), "(batch, dim, L)")
        _activation_dtype_check("z", z, in_dtype)
        z = _as(z, in_dtype)
    _check_tensor("A", A)
    _check_device("A", A, device)
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must have shape (dim, N) with dim = {d}, got {tuple(A.shape)}")
    N = A.shape[1]
    if N == 0:
        raise ValueError("A has N = 0 states; the scan needs at least one")
    A = _as(A, cdt)
    B = _scan_matrix("B", B, b, d, N, L, in_dtype, cdt, device)
    C = _scan_matrix("C", C, b, d, N, L, in_dtype, cdt, device)
    D = _weight("D", D, (d,), "(dim,)", cdt, device)
    delta_bias = _weight("delta_bias", delta_bias, (d,), "(dim,)", cdt, device)
    initial_state = _weight("initial_state", initial_state, (b, d, N), "(batch, dim, N)", cdt, device)
    return ScanInputs(_as(u, in_dtype), _as(delta, in_dtype), A, B, C, D, z, delta_bias, initial_state)


def validate_step_inputs(state, x, dt, A, B, C, D=None, z=None, dt_bias=None):
    """Check and normalize the inputs of :func:`selective_state_update`.

    Returns ``(x, dt, A, B, C, D, z, dt_bias)``; ``B``/``C`` come back as
    ``(b, G, N)``. ``state`` itself is checked but never copied (it is
    updated in place).
    """
    _check_tensor("state", state)
    if state.dim() != 3:
        raise ValueError(f"state must have shape (batch, dim, N), got {tuple(state.shape)}")
    if state.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"state must be float32 or float64 (it accumulates), got {state.dtype}")
    b, d, N = state.shape
    device = state.device
    _check_tensor("x", x)
    _check_device("x", x, device)
    if x.dtype not in INPUT_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; supported are float32, float16, bfloat16 and float64")
    _check_shape("x", x, (b, d), "(batch, dim)")
    in_dtype, cdt = x.dtype, state.dtype
    _check_tensor("dt", dt)
    _check_device("dt", dt, device)
    _check_shape("dt", dt, (b, d), "(batch, dim)")
    _activation_dtype_check("dt", dt, in_dtype)
    if z is not None:
        _check_tensor("z", z)
        _check_device("z", z, device)
        _check_shape("z", z, (b, d), "(batch, dim)")
        _activation_dtype_check("z", z, in_dtype)
    A = _weight("A", A, (d, N), "(dim, N)", cdt, device)
    B = _step_matrix("B", B, b, d, N, in_dtype, cdt, device)
    C = _step_matrix("C", C, b, d, N, in_dtype, cdt, device)
    D = _weight("D", D, (d,), "(dim,)", cdt, device)
    dt_bias = _weight("dt_bias", dt_bias, (d,), "(dim,)", cdt, device)
    return x, dt, A, B, C, D, z, dt_bias


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    initial_state: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Selective scan (the Mamba-1 S6 recurrence), differentiable in every tensor input.

    Same arguments, shapes and semantics as mamba_ssm's ``selective_scan_fn``
    with real ``A``, plus ``initial_state`` and a choice of backend.

    .. math::

        \Delta_t &= \operatorname{softplus}(\delta_t + b_\Delta)
            \quad(\text{or } \delta_t + b_\Delta \text{ without softplus}) \\
        h_t &= e^{\Delta_t A} \odot h_{t-1} + \Delta_t\, u_t\, B_t,
            \qquad h_0 = \text{initial\_state} \text{ or } 0 \\
        y_t &= \textstyle\sum_n C_t[n]\, h_t[n] + D\, u_t, \qquad
        y_t \leftarrow y_t \odot \operatorname{silu}(z_t)

    for every batch element and channel ``d`` (``A`` is ``(dim, N)``, so each
    channel has its own ``N`` decays).

    Parameters
    ----------
    u : Tensor, shape ``(batch, dim, L)``
        Input sequence, float32, float16, bfloat16 or float64. Time is the
        last axis.
    delta : Tensor, shape ``(batch, dim, L)``
        Raw step sizes, ``u``'s dtype.
    A : Tensor, shape ``(dim, N)``
        Continuous-time state matrix (diagonal per channel), real. Negative
        entries give decaying states.
    B, C : Tensor
        Input and output matrices: ``(batch, N, L)``; grouped
        ``(batch, G, N, L)`` with ``dim % G == 0`` (channel ``c`` uses group
        ``c // (dim // G)``); or time-invariant ``(dim, N)``. Any floating
        dtype; they enter the sums in float32 (float64 for float64 ``u``).
    D : Tensor, shape ``(dim,)``, optional
        Skip connection.
    z : Tensor, shape ``(batch, dim, L)``, optional
        Gate; the output is multiplied by ``silu(z)``.
    delta_bias : Tensor, shape ``(dim,)``, optional
        Added to ``delta`` before the softplus.
    delta_softplus : bool, default False
        Apply softplus to ``delta + delta_bias``.
    return_last_state : bool, default False
        Also return the final state :math:`h_L`.
    initial_state : Tensor, shape ``(batch, dim, N)``, optional
        :math:`h_0`; zeros when omitted. Use it to continue a scan over a
        sequence cut into pieces.
    backend : {"auto", "torch", "triton"}, default "auto"
        ``"triton"``: Triton kernels (CUDA tensors, or CPU tensors under
        ``TRITON_INTERPRET=1``). ``"torch"``: chunked PyTorch, any device.
        ``"auto"``: Triton on CUDA, torch otherwise; see
        :func:`available_backends`.

    Returns
    -------
    y : Tensor, shape ``(batch, dim, L)``
        In ``u``'s dtype.
    last_state : Tensor, shape ``(batch, dim, N)``
        Only with ``return_last_state``; float32 (float64 for float64
        ``u``). Gradients flowing into it are propagated.

    Raises
    ------
    TypeError
        Non-floating, complex or mixed activation dtypes.
    ValueError
        Mismatched shapes, ``dim % G != 0``, tensors on several devices, an
        unknown backend, or ``backend="triton"`` where Triton cannot run.

    Notes
    -----
    States and sums are carried in float32 (float64 for float64 inputs).
    The update multiplies by :math:`e^{\Delta_t A} \le 1` for
    :math:`A \le 0`; no exponential of a positive cumulative sum is ever
    formed, so extreme step sizes (:math:`\Delta` from 1e-6 to 1e3, ``A``
    down to -1e3) stay finite.

    The backward passes are fused (kernels, in-place sweeps) and record no
    graph: first derivatives only; ``create_graph=True`` raises. For higher
    derivatives use :func:`selective_scan_ref`.

    **Unequal lengths.** A step with :math:`\Delta_t = 0` leaves the state
    unchanged (:math:`e^{0} = 1`, no input), so series of different lengths
    are batched by *left*-padding each with ``delta`` chosen so that
    :math:`\Delta = 0` (``delta = 0`` without softplus and bias) and any
    ``u``: the final state and the outputs at the real time steps equal
    those of the unpadded series.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
       Selective State Spaces", arXiv:2312.00752, 2023.

    Examples
    --------
    >>> import torch
    >>> from sciamba.kernels import selective_scan, selective_scan_ref
    >>> b, d, L, N = 2, 3, 50, 4
    >>> u, delta = torch.randn(b, d, L), torch.rand(b, d, L)
    >>> A = -torch.rand(d, N)
    >>> B, C = torch.randn(b, N, L), torch.randn(b, N, L)
    >>> y, h = selective_scan(u, delta, A, B, C, return_last_state=True, backend="torch")
    >>> y.shape, h.shape
    (torch.Size([2, 3, 50]), torch.Size([2, 3, 4]))
    >>> torch.allclose(y, selective_scan_ref(u, delta, A, B, C), atol=1e-5)
    True

    Continuing from a state gives the same result as one long scan:

    >>> y1, h1 = selective_scan(u[..., :20], delta[..., :20], A, B[..., :20], C[..., :20],
    ...                         return_last_state=True, backend="torch")
    >>> y2 = selective_scan(u[..., 20:], delta[..., 20:], A, B[..., 20:], C[..., 20:],
    ...                     initial_state=h1, backend="torch")
    >>> torch.allclose(torch.cat([y1, y2], -1), y, atol=1e-5)
    True
    """
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u must be a torch.Tensor, got {type(u).__name__}")
    name = resolve_backend(backend, u.device)
    x = validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state)
    delta_softplus, return_last_state = bool(delta_softplus), bool(return_last_state)
    if name == "triton":
        try:
            from ._triton_scan import selective_scan_triton
        except ImportError as exc:  # triton present but broken (version, driver)
            raise RuntimeError(
                f"backend='triton' failed to import its kernels ({exc}); use backend='torch'"
            ) from exc

        return selective_scan_triton(
            x.u, x.delta, x.A, x.B, x.C, x.D, x.z, x.delta_bias, delta_softplus, return_last_state, x.initial_state
        )
    from ._torch_scan import selective_scan_torch

    return selective_scan_torch(
        x.u, x.delta, x.A, x.B, x.C, x.D, x.z, x.delta_bias, delta_softplus, return_last_state, x.initial_state
    )
