r"""Chunked, vectorized selective scan in PyTorch (the CPU backend; runs on any device).

Design
------
Time is cut into chunks of ``T`` steps. The state is laid out
``(b, G, N, H)`` with ``dim = G H``, so the contiguous axis is the channel
axis ``H`` and every op is a long vectorized loop. Per chunk:

1. the decays :math:`e^{\Delta_t A}` and inputs :math:`\Delta_t u_t B_t` of all
   ``T`` steps are formed at once, ``(T, b, G, N, H)`` (``exp2`` of a
   pre-scaled exponent: ~4x faster than ``exp`` on CPU);
2. the recurrence :math:`h_t = e^{\Delta_t A} h_{t-1} + \Delta_t u_t B_t` runs
   as one fused multiply-add per step over all ``b·dim·N`` states. For small
   states, where PyTorch's per-op overhead dominates, blocks of up to 8 steps
   are first combined pairwise (a Blelloch up-sweep along time, one op per
   level), the block ends are chained sequentially and a down-sweep fills in
   the rest (:func:`_scan`);
3. the readout :math:`\sum_n C_t[n] h_t[n]` is one batched matrix product.

Only a chunk's worth of ``b·dim·N`` tensors (a few buffers of ``T·b·dim·N``,
reused across chunks) is alive at a time, never the full ``b·dim·L·N`` state;
the cost is linear in ``L``, so throughput does not depend on the length.

The backward pass is a custom :class:`torch.autograd.Function`: the forward
keeps only the state at each chunk start (``(L / T)·b·dim·N`` numbers, no
more than ``u`` itself since ``T >= N``); the backward walks the chunks in
reverse, recomputes the chunk's states from its start state, runs the adjoint
recurrence :math:`g_t = C_t \bar y_t + e^{\Delta_{t+1} A} g_{t+1}` (the same
scan, reversed) and forms all gradients of the chunk by batched reductions.

Only products of decays :math:`e^{\Delta A} \le 1` (for ``A <= 0``) appear;
there is no exponential of a cumulative sum (whose quotient form overflows),
so extreme step sizes stay finite.
"""

from __future__ import annotations

import math

import torch

from ._backends import grad_needed, refuse_create_graph
from ._math import add_skip, compute_dtype, discretize_delta, gate_output

__all__ = ["selective_scan_torch"]

#: Target number of state elements ``T·b·dim·N`` per chunk buffer (2 MiB in
#: float32): large enough that the ~10 vectorized ops per chunk amortize
#: PyTorch's dispatch overhead, small enough to stay in cache.
_CHUNK_ELEMS = 1 << 19
_MIN_CHUNK, _MAX_CHUNK = 16, 256
#: Target ``b·dim·L_s`` of a segment (8 MiB per full-size temporary in float32).
_SEGMENT_ELEMS = 1 << 21
_LOG2E = 1.4426950408889634
#: At most this many time steps per sequential step in :func:`_scan`, used
#: while ``S·b·dim·N`` stays below ``_SWEEP_STATES``.
_SWEEP_BLOCK, _SWEEP_STATES = 8, 1 << 14


def _chunk_len(L: int, states: int, N: int) -> int:
    T = _CHUNK_ELEMS // max(states, 1)
    # T >= N keeps the saved chunk-start states no larger than u itself.
    T = max(T, _MIN_CHUNK, N)
    return int(min(T, _MAX_CHUNK, L))


def _time_major(x: torch.Tensor, G: int) -> torch.Tensor:
    """``(b, d, L)`` -> ``(L, b, G, 1, H)`` contiguous (``d = G H``)."""
    b, d, L = x.shape
    # PyTorch's copy has a fast path for the transpose of a contiguous 2-D
    # tensor only: several times faster than a 3-D permute or a strided slice.
    return x.contiguous().reshape(b * d, L).t().contiguous().reshape(L, b, G, 1, d // G)


def _from_time_major(y: torch.Tensor) -> torch.Tensor:
    """``(L, b, G, 1, H)`` -> ``(b, d, L)`` contiguous."""
    L, b = y.shape[:2]
    return y.reshape(L, -1).t().contiguous().reshape(b, -1, L)


def _state_major(x: torch.Tensor, G: int) -> torch.Tensor:
    """``(..., d, N)`` -> ``(..., G, N, H)`` contiguous: ``H`` is the vectorized axis."""
    *lead, d, N = x.shape
    return x.reshape(*lead, G, d // G, N).transpose(-1, -2).contiguous()


def _from_state_major(x: torch.Tensor) -> torch.Tensor:
    """``(..., G, N, H)`` -> ``(..., d, N)``."""
    *lead, G, N, H = x.shape
    return x.transpose(-1, -2).reshape(*lead, G * H, N)


def _matrix_time_major(M: torch.Tensor, G: int) -> torch.Tensor:
    """B or C as ``(L, b, G, N, 1)`` (variable) or ``(G, N, H)`` (time-invariant)."""
    if M.dim() == 2:
        return _state_major(M, G)  # (G N H)
    return M.permute(3, 0, 1, 2).unsqueeze(4).contiguous()  # (L b G N 1)


def _chunk(M: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    return M if M.dim() == 3 else M[t0:t1]


def _block(n: int, states: int) -> int:
    """Time steps per sequential step of :func:`_scan` for ``n`` steps of ``states`` numbers.

    The up-/down-sweep costs ~3 extra vectorized passes and saves
    ``(1 - 1/S) n`` per-step dispatches (~2 us each); that pays off only for
    small states. The result is a power of two dividing ``n``.
    """
    S = 1
    while S < _SWEEP_BLOCK and S * states < _SWEEP_STATES:
        S *= 2
    return math.gcd(n, S)


def _scan(a: torch.Tensor, x: torch.Tensor, S: int) -> None:
    """In place, ``x[t + 1] += a[t] x[t]`` for ``t = 0 .. n-1`` (``x`` has ``n + 1`` rows).

    With ``S = 1`` this is a plain loop of ``n`` fused multiply-adds. With
    ``S > 1`` (a power of two dividing ``n``, from :func:`_block`) blocks of
    ``S`` steps are first reduced pairwise (a Blelloch up-sweep over the time
    axis, one vectorized op per level), the block ends are chained by a loop
    of ``n / S`` steps, and a down-sweep fills in the states inside the
    blocks: ~3 extra vectorized passes for ``S`` times fewer tiny ops. ``a``
    is then overwritten (scratch). Every multiplier stays a product of
    decays ``<= 1``.
    """
    n = a.shape[0]
    s = 1
    while s < S:  # up-sweep: x at block ends accumulates its left half
        x[2 * s :: 2 * s].addcmul_(a[2 * s - 1 :: 2 * s], x[s : n : 2 * s])
        a[2 * s - 1 :: 2 * s].mul_(a[s - 1 : n : 2 * s])
        s *= 2
    ends, mult = x[::S].unbind(0), a[S - 1 :: S].unbind(0)
    for m in range(n // S):
        ends[m + 1].addcmul_(mult[m], ends[m])
    while s > 1:  # down-sweep: fill in the middle of each block
        s //= 2
        x[s : n : 2 * s].addcmul_(a[s - 1 : n : 2 * s], x[0 : n : 2 * s])


def _scan_reverse(p: torch.Tensor, x: torch.Tensor, S: int) -> None:
    """In place, ``x[t] += p[t] x[t + 1]`` for ``t = n-1 .. 0`` (mirror image of :func:`_scan`)."""
    n = p.shape[0]
    s = 1
    while s < S:
        x[0 : n : 2 * s].addcmul_(p[0 : n : 2 * s], x[s : n : 2 * s])
        p[0 : n : 2 * s].mul_(p[s : n : 2 * s])
        s *= 2
    starts, mult = x[::S].unbind(0), p[0:n:S].unbind(0)
    for m in range(n // S - 1, -1, -1):
        starts[m].addcmul_(mult[m], starts[m + 1])
    while s > 1:
        s //= 2
        x[s : n : 2 * s].addcmul_(p[s : n : 2 * s], x[2 * s :: 2 * s])


def _decay(dt: torch.Tensor, A2: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = exp(Δ A)``: ``dt`` ``(n b G 1 H)``, ``A2 = A log2(e)`` ``(G N H)``."""
    # exp2 of a pre-scaled exponent is ~4x faster than exp in PyTorch's CPU
    # kernels (mamba_ssm's CUDA kernel does the same); relative error ~|ΔA| eps.
    return torch.mul(dt, A2, out=out).exp2_()  # (n b G N H)


def _contract_n(h: torch.Tensor, M: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor) -> None:
    """``out = sum_n M[n] h[n]``: ``h`` ``(n b G N H)``, ``M`` ``(n b G N 1)`` or ``(G N H)``.

    ``out``: ``(n, b, G, 1, H)``; ``tmp``: scratch shaped like ``h``.
    """
    if M.dim() == 5:
        torch.matmul(M.transpose(-1, -2), h, out=out)  # (n b G 1 N) @ (n b G N H)
    else:
        torch.sum(torch.mul(h, M, out=tmp), dim=-2, keepdim=True, out=out)


def _contract_h(h: torch.Tensor, v: torch.Tensor, out: torch.Tensor | None, tmp: torch.Tensor):
    """Gradient of a ``B``/``C``: ``sum_h h[..., n, h] v[..., 0, h]``.

    ``h`` ``(n b G N H)``, ``v`` ``(n b G 1 H)``; into ``out`` ``(n b G N 1)``
    (variable matrix), or summed over time and batch to ``(G N H)`` when
    ``out`` is None (time-invariant matrix).
    """
    if out is not None:
        torch.matmul(h, v.transpose(-1, -2), out=out)  # (n b G N H) @ (n b G H 1)
        return out
    return torch.mul(h, v, out=tmp).sum((0, 1))  # (G N H)


class _ScanCore(torch.autograd.Function):
    """The linear recurrence and ``C`` readout, on time-major normalized inputs.

    The state is laid out ``(b, G, N, H)`` (``dim = G H``) so that the
    contiguous, vectorized axis is the channel axis ``H`` and the ``N``
    contraction is a batched matrix product. Inputs: ``dt``, ``u``
    ``(L, b, G, 1, H)``; ``A`` ``(G, N, H)``; ``B``, ``C`` ``(L, b, G, N, 1)``
    or ``(G, N, H)``; ``h0`` ``(b, G, N, H)``; ``T`` the chunk length.
    Outputs: ``y`` ``(L, b, G, 1, H)`` (before ``D`` and the gate) and
    ``h_L`` ``(b, G, N, H)``.
    """

    @staticmethod
    def forward(ctx, dt, u, A, B, C, h0, T):
        L = dt.shape[0]
        T = min(T, L)
        A2 = A * _LOG2E  # (G N H)
        w = dt * u  # (L b G 1 H)
        y = torch.empty_like(u)  # (L b G 1 H)
        decay = h0.new_empty((T, *h0.shape))  # (T b G N H)
        hs = h0.new_empty((T + 1, *h0.shape))  # (T+1 b G N H)
        keep = any(ctx.needs_input_grad)
        starts = h0.new_empty(((L + T - 1) // T, *h0.shape)) if keep else None  # (chunks b G N H)
        hs[0] = h0
        for k, t0 in enumerate(range(0, L, T)):
            t1 = min(t0 + T, L)
            n = t1 - t0
            if keep:
                starts[k] = hs[0]
            torch.mul(w[t0:t1], _chunk(B, t0, t1), out=hs[1 : n + 1])  # Δ u B: (n b G N H)
            _scan(_decay(dt[t0:t1], A2, decay[:n]), hs[: n + 1], _block(n, h0.numel()))
            _contract_n(hs[1 : n + 1], _chunk(C, t0, t1), y[t0:t1], decay[:n])
            hs[0] = hs[n]
        if keep:
            ctx.save_for_backward(dt, u, A, B, C, starts)
            ctx.T = T
        return y, hs[0].clone()

    @staticmethod
    def backward(ctx, gy, gh):
        # In-place sweeps below record no graph: refuse create_graph=True outright
        # (once_differentiable would miss second derivatives through the inputs).
        refuse_create_graph("selective_scan (backend='torch')",
                            "use selective_scan_ref, the plain differentiable definition")
        dt, u, A, B, C, starts = ctx.saved_tensors
        T = ctx.T
        L = dt.shape[0]
        var_B, var_C = B.dim() == 5, C.dim() == 5
        A2 = A * _LOG2E  # (G N H)
        w = dt * u  # (L b G 1 H)
        gy = gy.contiguous()  # (L b G 1 H)
        g_w = torch.empty_like(gy)  # (L b G 1 H)
        g_dt = torch.empty_like(gy)  # (L b G 1 H)
        g_A = torch.zeros_like(A)  # (G N H)
        g_B = torch.empty_like(B) if var_B else torch.zeros_like(B)  # (L b G N 1) or (G N H)
        g_C = torch.empty_like(C) if var_C else torch.zeros_like(C)  # (L b G N 1) or (G N H)
        shape = starts.shape[1:]
        decay = starts.new_empty((T, *shape))  # (T b G N H)
        hs = starts.new_empty((T + 1, *shape))  # (T+1 b G N H)
        g = starts.new_empty((T + 1, *shape))  # (T+1 b G N H)
        tmp = starts.new_empty((T, *shape))  # (T b G N H)
        # carry = e^{Δ_{t+1} A} g_{t+1}: the adjoint flowing into step t.
        carry = gh.clone() if gh is not None else torch.zeros_like(starts[0])  # (b G N H)
        for k in reversed(range(starts.shape[0])):
            t0, t1 = k * T, min(k * T + T, L)
            n = t1 - t0
            Bc, Cc = _chunk(B, t0, t1), _chunk(C, t0, t1)
            dec, h, gc, tm = decay[:n], hs[: n + 1], g[: n + 1], tmp[:n]
            _decay(dt[t0:t1], A2, dec)
            h[0] = starts[k]
            torch.mul(w[t0:t1], Bc, out=h[1:])  # (n b G N H)
            # The sweep overwrites its multipliers; the plain loop does not.
            S = _block(n, carry.numel())
            _scan(tm.copy_(dec) if S > 1 else dec, h, S)
            # Adjoint recurrence: g_t = C_t gy_t + decay_{t+1} g_{t+1}, where
            # the carry is decay_n g_n from the next chunk.
            torch.mul(gy[t0:t1], Cc, out=gc[:n])  # (n b G N H)
            if S > 1:
                gc[n] = carry
                tm[: n - 1] = dec[1:]
                tm[n - 1] = 1.0
                _scan_reverse(tm, gc, S)
            else:
                gc[n - 1] += carry
                _scan_reverse(dec[1:], gc[:n], 1)
            gc = gc[:n]
            torch.mul(dec[0], gc[0], out=carry)
            if var_C:
                _contract_h(h[1:], gy[t0:t1], g_C[t0:t1], tm)
            else:
                g_C += _contract_h(h[1:], gy[t0:t1], None, tm)
            if var_B:
                _contract_h(gc, w[t0:t1], g_B[t0:t1], tm)
            else:
                g_B += _contract_h(gc, w[t0:t1], None, tm)
            _contract_n(gc, Bc, g_w[t0:t1], tm)
            # h_t depends on Δ_t through decay_t h_{t-1}; d decay / dΔ = A decay.
            q = gc.mul_(dec).mul_(h[:-1])  # (n b G N H); g is not needed any more
            torch.sum(torch.mul(q, A, out=tm), dim=-2, keepdim=True, out=g_dt[t0:t1])
            g_A += torch.mul(q, dt[t0:t1], out=tm).sum((0, 1))
        g_dt.addcmul_(g_w, u)
        return g_dt, g_w.mul_(dt), g_A, g_B, g_C, carry, None


def _segment_len(L: int, channels: int, T: int) -> int:
    """Time steps per segment: a multiple of ``T`` with ``channels·L_s`` near ``_SEGMENT_ELEMS``."""
    return max(T, (_SEGMENT_ELEMS // max(channels, 1)) // T * T)


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
):
    """Chunked torch backend on validated inputs (see :func:`selective_scan`).

    Long sequences are processed in segments of ``L_s`` steps (about
    ``_SEGMENT_ELEMS / (b·dim)``), the state carried from one to the next, so
    that the full-size temporaries (Δ, the time-major copies) are
    segment-sized: cost per token, and memory beyond inputs and output, do
    not grow with ``L``.
    """
    cdt = compute_dtype(u.dtype)
    b, d, L = u.shape
    N = A.shape[1]
    # One group count for both matrices: the finest grouping that both divide.
    G = math.lcm(*(M.shape[1] for M in (B, C) if M.dim() == 4)) if max(B.dim(), C.dim()) == 4 else 1
    B, C = _expand_groups(B, G), _expand_groups(C, G)  # (b G N L) or (d N)
    A_s = _state_major(A, G)  # (G N H)
    B_inv = _state_major(B.to(cdt), G) if B.dim() == 2 else None  # (G N H)
    C_inv = _state_major(C.to(cdt), G) if C.dim() == 2 else None  # (G N H)
    h0 = initial_state if initial_state is not None else u.new_zeros(b, d, N, dtype=cdt)  # (b d N)
    h = _state_major(h0, G)  # (b G N H)
    T = _chunk_len(L, b * d * N, N)
    Ls = _segment_len(L, b * d, T)
    track = grad_needed(u, delta, A, B, C, D, z, delta_bias, initial_state)
    y = None if track else u.new_empty(b, d, L)  # (b d L)
    pieces = []
    for s0 in range(0, L, Ls):
        seg = slice(s0, min(s0 + Ls, L))
        u_s = u[..., seg].to(cdt)  # (b d Ls)
        y_s, h = _ScanCore.apply(
            _time_major(discretize_delta(delta[..., seg].to(cdt), delta_bias, delta_softplus), G),  # Δ: (Ls b G 1 H)
            _time_major(u_s, G),  # (Ls b G 1 H)
            A_s,
            B_inv if B_inv is not None else _matrix_time_major(B[..., seg].to(cdt), G),  # (Ls b G N 1) or (G N H)
            C_inv if C_inv is not None else _matrix_time_major(C[..., seg].to(cdt), G),  # (Ls b G N 1) or (G N H)
            h,
            T,
        )
        y_s = add_skip(_from_time_major(y_s), u_s, D)  # (b d Ls)
        y_s = gate_output(y_s, None if z is None else z[..., seg].to(cdt))
        if track:
            pieces.append(y_s.to(u.dtype))
        else:
            y[..., seg] = y_s
    if track:
        y = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)
    if return_last_state:
        return y, _from_state_major(h)  # (b d N)
    return y


def _expand_groups(M: torch.Tensor, G: int) -> torch.Tensor:
    """Repeat the groups of a variable ``(b, G0, N, L)`` matrix to ``G`` groups."""
    if M.dim() == 2 or M.shape[1] == G:
        return M
    return M.repeat_interleave(G // M.shape[1], dim=1)
