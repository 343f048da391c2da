"""The plain sequential selective scan: the definition every backend is tested against."""

from __future__ import annotations

import torch

from ._interface import validate_scan_inputs
from ._math import add_skip, compute_dtype, discretize_delta, gate_output

__all__ = ["selective_scan_ref"]


def _per_channel(M: torch.Tensor, d: int, cdt: torch.dtype) -> torch.Tensor:
    """B or C as ``(b, d, N, L)`` (variable) or ``(d, N)`` (time-invariant)."""
    if M.dim() == 2:
        return M.to(cdt)  # (d N)
    G = M.shape[1]
    return M.to(cdt).repeat_interleave(d // G, dim=1)  # (b G N L) -> (b d N L)


def selective_scan_ref(
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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Reference selective scan: a plain loop over time, differentiable by autograd.

    Same arguments, shapes and result as :func:`selective_scan` (see there
    for the math). Computes in float64 when ``u`` is float64, in float32
    otherwise. It is slow (one step per time index, ``O(L)`` autograd
    graph) and exists as the oracle for the fast backends.

    Parameters
    ----------
    u, delta : Tensor, shape ``(batch, dim, L)``
    A : Tensor, shape ``(dim, N)``
    B, C : Tensor, shape ``(batch, N, L)``, ``(batch, G, N, L)`` or ``(dim, N)``
    D, delta_bias : Tensor, shape ``(dim,)``, optional
    z : Tensor, shape ``(batch, dim, L)``, optional
    delta_softplus, return_last_state : bool
    initial_state : Tensor, shape ``(batch, dim, N)``, optional

    Returns
    -------
    y : Tensor, shape ``(batch, dim, L)``, ``u``'s dtype
    last_state : Tensor, shape ``(batch, dim, N)``
        Only with ``return_last_state``; float32 (float64 for float64 ``u``).

    Examples
    --------
    A single channel with one state is the exponential moving filter
    :math:`h_t = e^{\Delta A} h_{t-1} + \Delta u_t`:

    >>> import torch
    >>> from sciamba.kernels import selective_scan_ref
    >>> u = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64)
    >>> delta = torch.ones_like(u)
    >>> A = torch.tensor([[-torch.log(torch.tensor(2.0)).item()]], dtype=torch.float64)
    >>> B = C = torch.ones(1, 1, 3, dtype=torch.float64)
    >>> selective_scan_ref(u, delta, A, B, C)
    tensor([[[1.0000, 0.5000, 0.2500]]], dtype=torch.float64)
    """
    x = validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state)
    cdt = compute_dtype(x.u.dtype)
    b, d, L = x.u.shape
    N = x.A.shape[1]
    uc = x.u.to(cdt)  # (b d L)
    dt = discretize_delta(x.delta.to(cdt), x.delta_bias, delta_softplus)  # (b d L)
    Bc = _per_channel(x.B, d, cdt)  # (b d N L) or (d N)
    Cc = _per_channel(x.C, d, cdt)  # (b d N L) or (d N)
    h = x.initial_state if x.initial_state is not None else uc.new_zeros(b, d, N)  # (b d N)
    # unbind once: indexing [..., t] in the loop would make autograd build a
    # full-size gradient per step (O(L^2) backward).
    dts, us = dt.unbind(-1), uc.unbind(-1)  # L x (b d)
    Bs = [Bc] * L if Bc.dim() == 2 else Bc.unbind(-1)  # L x (d N) or (b d N)
    Cs = [Cc] * L if Cc.dim() == 2 else Cc.unbind(-1)  # L x (d N) or (b d N)
    ys = []
    for t in range(L):
        decay = torch.exp(dts[t][:, :, None] * x.A)  # (b d N)
        h = decay * h + (dts[t] * us[t])[:, :, None] * Bs[t]  # (b d N)
        ys.append((h * Cs[t]).sum(-1))  # (b d)
    y = add_skip(torch.stack(ys, dim=-1), uc, x.D)  # (b d L)
    y = gate_output(y, None if x.z is None else x.z.to(cdt))
    y = y.to(x.u.dtype)
    return (y, h) if return_last_state else y
