"""One recurrent step of the selective scan, for streaming inference."""

from __future__ import annotations

import torch

from ._backends import resolve_backend
from ._interface import validate_step_inputs
from ._math import add_skip, discretize_delta, gate_output

__all__ = ["selective_state_update"]


def selective_state_update(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Advance the scan state by one time step, in place, and return that step's output.

    Equal to step ``t`` of :func:`selective_scan` given its state at ``t - 1``:

    .. math::

        \Delta &= \operatorname{softplus}(dt + b_\Delta) \quad(\text{or } dt + b_\Delta), \\
        h &\leftarrow e^{\Delta A} \odot h + \Delta\, x\, B, \qquad
        y = \textstyle\sum_n C[n]\, h[n] + D\, x, \qquad
        y \leftarrow y \odot \operatorname{silu}(z).

    Same arguments as mamba_ssm's Triton ``selective_state_update`` (without
    heads), plus a choice of backend: one Triton kernel on CUDA, a few
    PyTorch ops anywhere.

    Parameters
    ----------
    state : Tensor, shape ``(batch, dim, N)``
        float32 or float64; overwritten with the new state.
    x, dt : Tensor, shape ``(batch, dim)``
        Input and raw step size at this time step (one dtype).
    A : Tensor, shape ``(dim, N)``
    B, C : Tensor
        ``(batch, N)``, grouped ``(batch, G, N)`` with ``dim % G == 0``, or
        time-invariant ``(dim, N)``. When ``batch == dim`` a 2-D input is read
        as ``(batch, N)``; pass a time-invariant matrix ``M`` as
        ``M.expand(batch, dim, N)`` (``G = dim``) then.
    D, dt_bias : Tensor, shape ``(dim,)``, optional
    z : Tensor, shape ``(batch, dim)``, optional
        Gate; the output is multiplied by ``silu(z)``.
    dt_softplus : bool, default False
    backend : {"auto", "torch", "triton"}, default "auto"
        ``"triton"``: one fused kernel (CUDA tensors, or CPU tensors under
        ``TRITON_INTERPRET=1``; needs a contiguous ``state``). ``"torch"``:
        PyTorch ops, any device and layout. ``"auto"``: Triton on CUDA when
        ``state`` is contiguous, torch otherwise.

    Returns
    -------
    y : Tensor, shape ``(batch, dim)``
        In ``x``'s dtype.

    Examples
    --------
    Stepping through a sequence reproduces the scan:

    >>> import torch
    >>> from sciamba.kernels import selective_scan_ref, selective_state_update
    >>> b, d, L, N = 2, 3, 5, 4
    >>> u, delta = torch.randn(b, d, L), torch.rand(b, d, L)
    >>> A, B, C = -torch.rand(d, N), torch.randn(b, N, L), torch.randn(b, N, L)
    >>> state = torch.zeros(b, d, N)
    >>> ys = [selective_state_update(state, u[..., t], delta[..., t], A, B[..., t], C[..., t])
    ...       for t in range(L)]
    >>> torch.allclose(torch.stack(ys, -1), selective_scan_ref(u, delta, A, B, C), atol=1e-5)
    True
    """
    x, dt, A, B, C, D, z, dt_bias = validate_step_inputs(state, x, dt, A, B, C, D, z, dt_bias)
    name = resolve_backend(backend, state.device)
    if name == "triton" and not state.is_contiguous():
        if backend == "triton":
            raise ValueError("backend='triton' updates state in place and needs it contiguous; "
                             "pass state.contiguous() (and keep that tensor) or use backend='torch'")
        name = "torch"
    if name == "triton":
        from ._triton_step import selective_state_update_triton

        return selective_state_update_triton(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    cdt = state.dtype
    d = state.shape[1]
    G = B.shape[1]
    Bc = B.to(cdt).repeat_interleave(d // G, dim=1) if G != d else B.to(cdt)  # (b d N)
    G = C.shape[1]
    Cc = C.to(cdt).repeat_interleave(d // G, dim=1) if G != d else C.to(cdt)  # (b d N)
    xc = x.to(cdt)  # (b d)
    delta = discretize_delta(dt.to(cdt), dt_bias, dt_softplus)  # (b d)
    state.mul_(torch.exp(delta[..., None] * A)).add_((delta * xc)[..., None] * Bc)  # (b d N)
    y = add_skip((state * Cc).sum(-1), xc, D)  # (b d)
    return gate_output(y, None if z is None else z.to(cdt)).to(x.dtype)
