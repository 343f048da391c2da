"""Chunked, vectorized selective scan in PyTorch (the CPU backend, runs on any device).

Design
------
Time is cut into chunks of ``T`` steps. Within a chunk, the decays
:math:`e^{\Delta_t A}` and inputs :math:`\Delta_t u_t B_t` are formed for all
``T`` steps at once (``(T, b, G, H, N)`` with ``dim = G H``), then the
recurrence runs as ``T`` fused multiply-adds, each vectorized over all
``b·dim·N`` states, and the ``C`` contraction is one batched reduction per
chunk. Only a chunk's worth of ``b·dim·N`` tensors is alive at a time, never
the full ``b·dim·L·N`` state.

The backward pass is a custom :class:`torch.autograd.Function`: the forward
keeps only the state at each chunk start (``(L / T)·b·dim·N`` numbers, no
more than ``u`` itself when ``T >= N``); the backward walks the chunks in
reverse, recomputes the chunk's states from its start state, runs the adjoint
recurrence :math:`g_t = C_t\,\bar y_t + e^{\Delta_{t+1} A} g_{t+1}` and forms
all gradients of the chunk by batched reductions.

Only products with :math:`e^{\Delta A} \le 1` (for ``A <= 0``) appear; there is
no exponential of a cumulative sum, so extreme step sizes stay finite.
"""

from __future__ import annotations

import math

import torch

from ._math import compute_dtype, discretize_delta, gate_output

__all__ = ["selective_scan_torch"]

#: Target number of state elements ``T·b·dim·N`` per chunk (one chunk tensor
#: is ``4·_CHUNK_ELEMS`` bytes in float32): large enough that each of the
#: ``T`` per-step ops amortizes PyTorch's dispatch overhead, small enough to
#: stay in cache.
_CHUNK_ELEMS = 1 << 19
_MIN_CHUNK, _MAX_CHUNK = 16, 256


def _chunk_len(L: int, states: int, N: int) -> int:
    T = _CHUNK_ELEMS // max(states, 1)
    # T >= N keeps the saved chunk-start states no larger than u itself.
    T = max(T, _MIN_CHUNK, N)
    return int(min(T, _MAX_CHUNK, L))


def _time_major(x: torch.Tensor, G: int) -> torch.Tensor:
    """``(b, d, L)`` -> ``(L, b, G, H)`` contiguous (``d = G H``)."""
    b, d, L = x.shape
    return x.permute(2, 0, 1).reshape(L, b, G, d // G).contiguous()


def _matrix_time_major(M: torch.Tensor, G: int, cdt: torch.dtype) -> torch.Tensor:
    """B or C as ``(L, b, G, 1, N)`` (variable) or ``(G, H, N)`` (time-invariant)."""
    if M.dim() == 2:
        d, N = M.shape
        return M.to(cdt).reshape(G, d // G, N)  # (G H N)
    return M.to(cdt).permute(3, 0, 1, 2).unsqueeze(3).contiguous()  # (L b G 1 N)


def _chunk(M: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    return M if M.dim() == 3 else M[t0:t1]


def _chunk_states(dt: torch.Tensor, w: torch.Tensor, A: torch.Tensor, B: torch.Tensor, h_prev: torch.Tensor):
    """States of one chunk.

    Returns ``decay`` ``(T, b, G, H, N)`` and ``hs`` ``(T + 1, b, G, H, N)``
    with ``hs[0] = h_prev`` and ``hs[t + 1] = decay[t] * hs[t] + w[t] * B[t]``.
    """
    T = dt.shape[0]
    decay = torch.exp(dt[..., None] * A)  # (T b G H N)
    hs = torch.empty((T + 1, *h_prev.shape), dtype=h_prev.dtype, device=h_prev.device)  # (T+1 b G H N)
    hs[0] = h_prev
    torch.mul(w[..., None], B, out=hs[1:])  # Δ u B: (T b G H N)
    for t in range(T):
        hs[t + 1].addcmul_(decay[t], hs[t])
    return decay, hs


def _contract(h: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``sum_n h[..., n] * M[..., n]``: ``(T b G H N), (T b G 1 N)|(G H N) -> (T b G H)``."""
    return torch.einsum("tbghn,tbgxn->tbgh", h, M) if M.dim() == 5 else torch.einsum("tbghn,ghn->tbgh", h, M)


class _ScanCore(torch.autograd.Function):
    """The linear recurrence and ``C`` readout, on time-major normalized inputs.

    Inputs: ``dt``, ``u`` ``(L, b, G, H)``; ``A`` ``(G, H, N)``; ``B``, ``C``
    ``(L, b, G, 1, N)`` or ``(G, H, N)``; ``h0`` ``(b, G, H, N)``. Outputs:
    ``y`` ``(L, b, G, H)`` (without ``D`` and gate) and ``h_L`` ``(b, G, H, N)``.
    """

    @staticmethod
    def forward(ctx, dt, u, A, B, C, h0, T):
        L = dt.shape[0]
        w = dt * u  # (L b G H)
        y = torch.empty_like(u)  # (L b G H)
        keep = any(ctx.needs_input_grad)
        starts = []
        h = h0
        for t0 in range(0, L, T):
            t1 = min(t0 + T, L)
            if keep:
                starts.append(h)
            _, hs = _chunk_states(dt[t0:t1], w[t0:t1], A, _chunk(B, t0, t1), h)
            y[t0:t1] = _contract(hs[1:], _chunk(C, t0, t1))
            h = hs[-1].clone()
        if keep:
            ctx.save_for_backward(dt, u, A, B, C, torch.stack(starts))
            ctx.T = T
        return y, h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, gh):
        dt, u, A, B, C, starts = ctx.saved_tensors
        T = ctx.T
        L = dt.shape[0]
        var_B, var_C = B.dim() == 5, C.dim() == 5
        w = dt * u  # (L b G H)
        g_dt = torch.empty_like(dt)  # (L b G H)
        g_w = torch.empty_like(dt)  # (L b G H)
        g_A = torch.zeros_like(A)  # (G H N)
        g_B = torch.empty_like(B) if var_B else torch.zeros_like(B)
        g_C = torch.empty_like(C) if var_C else torch.zeros_like(C)
        # carry = e^{Δ_{t+1} A} g_{t+1}, the adjoint flowing into the previous step.
        carry = gh.clone() if gh is not None else torch.zeros_like(starts[0])  # (b G H N)
        k = starts.shape[0]
        for t0 in reversed(range(0, L, T)):
            k -= 1
            t1 = min(t0 + T, L)
            Bc, Cc = _chunk(B, t0, t1), _chunk(C, t0, t1)
            decay, hs = _chunk_states(dt[t0:t1], w[t0:t1], A, Bc, starts[k])
            gy_c = gy[t0:t1]  # (T b G H)
            # Adjoint: g_t = C_t gy_t + decay_{t+1} g_{t+1}.
            g = gy_c[..., None] * Cc  # (T b G H N)
            g[-1] += carry
            for t in range(t1 - t0 - 2, -1, -1):
                g[t].addcmul_(decay[t + 1], g[t + 1])
            carry = decay[0] * g[0]
            if var_C:
                g_C[t0:t1] = torch.einsum("tbgh,tbghn->tbgn", gy_c, hs[1:]).unsqueeze(3)
            else:
                g_C += torch.einsum("tbgh,tbghn->ghn", gy_c, hs[1:])
            if var_B:
                g_B[t0:t1] = torch.einsum("tbgh,tbghn->tbgn", w[t0:t1], g).unsqueeze(3)
            else:
                g_B += torch.einsum("tbgh,tbghn->ghn", w[t0:t1], g)
            g_w[t0:t1] = _contract(g, Bc)
            # d h_t / d decay_t = h_{t-1}; d decay_t / d Δ_t = decay_t A.
            q = g.mul_(decay).mul_(hs[:-1])  # (T b G H N), g is not needed any more
            g_dt[t0:t1] = torch.einsum("tbghn,ghn->tbgh", q, A)
            g_A += torch.einsum("tbghn,tbgh->ghn", q, dt[t0:t1])
        g_dt += g_w * u
        g_u = g_w * dt
        return g_dt, g_u, g_A, g_B, g_C, carry, None


def selective_scan_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    return_last_state: bool,
    initial_state: torch.Tensor | None,
    chunk_len: int | None = None,
):
    """Chunked torch backend on validated inputs (see :func:`selective_scan`)."""
    cdt = compute_dtype(u.dtype)
    b, d, L = u.shape
    N = A.shape[1]
    # One group count for both matrices: the finest grouping that both divide.
    G = math.lcm(*(M.shape[1] for M in (B, C) if M.dim() == 4)) if max(B.dim(), C.dim()) == 4 else 1
    B = _expand_groups(B, G)
    C = _expand_groups(C, G)
    uc = u.to(cdt)  # (b d L)
    dt = discretize_delta(delta.to(cdt), delta_bias, delta_softplus)  # (b d L)
    h0 = initial_state if initial_state is not None else uc.new_zeros(b, d, N)  # (b d N)
    T = chunk_len if chunk_len is not None else _chunk_len(L, b * d * N, N)
    y, h = _ScanCore.apply(
        _time_major(dt, G),
        _time_major(uc, G),
        A.reshape(G, d // G, N),
        _matrix_time_major(B, G, cdt),
        _matrix_time_major(C, G, cdt),
        h0.reshape(b, G, d // G, N),
        T,
    )
    y = y.reshape(L, b, d).permute(1, 2, 0)  # (b d L)
    if D is not None:
        y = y + D[:, None] * uc
    y = gate_output(y, None if z is None else z.to(cdt)).to(u.dtype).contiguous()
    if return_last_state:
        return y, h.reshape(b, d, N)
    return y


def _expand_groups(M: torch.Tensor, G: int) -> torch.Tensor:
    """Repeat the groups of a variable ``(b, G0, N, L)`` matrix to ``G`` groups."""
    if M.dim() == 2 or M.shape[1] == G:
        return M
    return M.repeat_interleave(G // M.shape[1], dim=1)
