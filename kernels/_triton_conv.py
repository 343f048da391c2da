r"""Triton kernels of the causal depthwise conv1d, forward and backward (``backend="triton"``).

The operation (see :func:`sciamba.kernels.causal_conv1d`) is, per batch row
``b`` and channel ``d``,

.. math::

    p_t = \beta_d + \sum_{k=0}^{K-1} w_{d,k}\, \tilde x_{t-(K-1)+k}, \qquad
    y_t = \sigma(p_t) \;(\text{or } p_t),

with :math:`\tilde x` the input with ``initial_state`` (the ``K - 1`` samples
before :math:`t = 0`, zeros when absent) prepended and
:math:`\sigma(p) = p / (1 + e^{-p})` (SiLU). The backward pass, for
:math:`\bar p_t = \bar y_t\, \sigma'(p_t)`, is

.. math::

    \bar x_s = \sum_{k=0}^{K-1} w_{d,k}\, \bar p_{s+(K-1)-k}, \qquad
    \bar w_{d,k} = \sum_{b,t} \bar p_t\, \tilde x_{t-(K-1)+k}, \qquad
    \bar\beta_d = \sum_{b,t} \bar p_t,

where :math:`\bar p_t = 0` outside :math:`0 \le t < L`; the gradient of
``initial_state`` is :math:`\bar x_s` for :math:`-(K-1) \le s < 0`.

Layout of the work
------------------
One program owns a ``(BD, BT)`` tile: a batch row, ``BD`` channels and ``BT``
time steps. Register tiles cannot be shifted along time, so each of the ``K``
taps is a separate load of the tile shifted by ``k - (K-1)`` steps; the
shifted loads overlap all but ``K - 1`` columns and hit L1/L2, so DRAM sees
each input byte about once. The loads take the input's strides
``(stride_b, stride_d, stride_l)``: a channel-last ``(b, L, d)`` tensor viewed
as ``(b, d, L)`` is read in place, and Triton's specialization of unit strides
lets the compiler coalesce along whichever axis is contiguous.

The backward pass recomputes :math:`p` from the input (nothing but the inputs
is saved), forms :math:`\bar p` once for its tile and the ``K - 1`` steps
after it, parks that in a per-program scratch row (all rows together about the
size of ``x`` in float32, alive during the backward) and reads it back at the
``K`` shifts :math:`\bar x` needs (recomputing :math:`p` at every shift, ``K·K``
tap loads and ``K`` sigmoids per step, made the backward five times slower
than its bytes on an H100), writes :math:`\bar x` for its tile and the per-tile channel sums of
:math:`\bar w` and :math:`\bar\beta` into a float32 buffer of
``(batch · time blocks, dim, K)``, which the host sums (deterministic, no
atomics). Only the tiles that start at ``t = 0`` read ``initial_state``
(time blocks are at least ``K - 1`` long), and they also write its
gradient.

Sums are carried in the weight's dtype: float32, or float64 for float64
inputs (the caller casts the weight accordingly).

This module is private: :func:`sciamba.kernels.causal_conv1d` validates the
inputs and calls :func:`causal_conv1d_triton`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._backends import check_buffer, grad_needed, on_device, refuse_create_graph
from ._launch import cdiv, launch, next_pow2

__all__ = ["MAX_K", "causal_conv1d_triton"]

#: Widest kernel the Triton path compiles (the initial-state gradient unrolls ``K·K`` tap loads).
MAX_K = 16

#: ``(BD, BT, num_warps)`` override for tests (small tiles make tiny problems
#: cross block edges) and tuning; ``None`` picks :func:`_blocks`.
_BLOCKS_OVERRIDE: tuple[int, int, int] | None = None


# --------------------------------------------------------------------------- #
# Device helpers
# --------------------------------------------------------------------------- #
@triton.jit
def _window(x_ptr, init_ptr, d64, dm, s, L, sx_d, sx_l, si_d, si_l,
            K: tl.constexpr, HAS_INIT: tl.constexpr, cdt):
    """:math:`\\tilde x` at times ``s`` (BT,) for channels ``d64`` (BD,): a (BD, BT) tile.

    ``x`` for ``0 <= s < L``, ``initial_state[K - 1 + s]`` for
    ``-(K-1) <= s < 0``, zero elsewhere. ``x_ptr`` and ``init_ptr`` already
    point at the batch row.
    """
    s64 = s.to(tl.int64)
    in_x = (s >= 0) & (s < L)
    v = tl.load(x_ptr + d64[:, None] * sx_d + s64[None, :] * sx_l,
                mask=dm[:, None] & in_x[None, :], other=0.0).to(cdt)  # (BD, BT)
    if HAS_INIT:
        in_h = (s < 0) & (s >= 1 - K)
        v += tl.load(init_ptr + d64[:, None] * si_d + (s64 + (K - 1))[None, :] * si_l,
                     mask=dm[:, None] & in_h[None, :], other=0.0).to(cdt)  # (BD, BT)
    return v


@triton.jit
def _preact(x_ptr, init_ptr, w_ptr, bias, d, d64, dm, s, L, sx_d, sx_l, si_d, si_l,
            K: tl.constexpr, HAS_INIT: tl.constexpr, cdt):
    """Pre-activation :math:`p` at times ``s``: (BD, BT), with ``bias`` (BD,) added."""
    w0 = tl.load(w_ptr + d * K, mask=dm, other=0.0)  # (BD,)
    acc = bias[:, None] + w0[:, None] * _window(x_ptr, init_ptr, d64, dm, s - (K - 1), L, sx_d,
                                                sx_l, si_d, si_l, K, HAS_INIT, cdt)  # (BD, BT)
    for k in tl.static_range(1, K):
        wk = tl.load(w_ptr + d * K + k, mask=dm, other=0.0)  # (BD,)
        acc += wk[:, None] * _window(x_ptr, init_ptr, d64, dm, s + (k - (K - 1)), L, sx_d, sx_l,
                                     si_d, si_l, K, HAS_INIT, cdt)
    return acc


@triton.jit
def _sigmoid(p):
    # exp(-p) overflows to inf for p << 0, giving exactly 0: never NaN.
    return 1.0 / (1.0 + tl.exp(-p))


@triton.jit
def _dpre(x_ptr, init_ptr, w_ptr, bias, dy_ptr, d, d64, dm, s, L, sx_d, sx_l, si_d, si_l,
          sg_d, sg_l, K: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
          cdt):
    """Gradient of the pre-activation at times ``s``: (BD, BT), zero outside ``[0, L)``."""
    s64 = s.to(tl.int64)
    ok = dm[:, None] & ((s >= 0) & (s < L))[None, :]
    g = tl.load(dy_ptr + d64[:, None] * sg_d + s64[None, :] * sg_l, mask=ok,
                other=0.0).to(cdt)  # (BD, BT)
    if SILU:
        p = _preact(x_ptr, init_ptr, w_ptr, bias, d, d64, dm, s, L, sx_d, sx_l, si_d, si_l,
                    K, HAS_INIT, cdt)  # (BD, BT)
        sg = _sigmoid(p)
        g = g * (sg * (1.0 + p * (1.0 - sg)))  # silu'(p)
    return g


@triton.jit
def _grad_input(g0, x_ptr, init_ptr, w_ptr, bias, dy_ptr, d, d64, dm, s, L, sx_d, sx_l, si_d,
                si_l, sg_d, sg_l, K: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                cdt):
    """:math:`\\bar x_s = \\sum_k w_k \\bar p_{s+K-1-k}` at times ``s``: (BD, BT).

    ``g0`` is :math:`\\bar p_s` (the ``k = K - 1`` term's factor), which the
    caller has already computed.
    """
    wl = tl.load(w_ptr + d * K + (K - 1), mask=dm, other=0.0)  # (BD,)
    acc = wl[:, None] * g0  # (BD, BT)
    for k in tl.static_range(K - 1):
        wk = tl.load(w_ptr + d * K + k, mask=dm, other=0.0)  # (BD,)
        acc += wk[:, None] * _dpre(x_ptr, init_ptr, w_ptr, bias, dy_ptr, d, d64, dm,
                                   s + (K - 1 - k), L, sx_d, sx_l, si_d, si_l, sg_d, sg_l,
                                   K, HAS_INIT, SILU, cdt)
    return acc


@triton.jit
def _bias(b_ptr, d, dm, HAS_BIAS: tl.constexpr, cdt, BD: tl.constexpr):
    if HAS_BIAS:
        return tl.load(b_ptr + d, mask=dm, other=0.0).to(cdt)  # (BD,)
    else:
        return tl.zeros([BD], dtype=cdt)


@triton.jit
def _bwd_tile(xb, ib, w_ptr, bias, gb, dx_ptr, dw_ptr, db_ptr, scr, d, d64, dm, t, t0, row, pid_b,
              L, sx_d, sx_l, si_d, si_l, sg_d, sg_l, so_b, so_d, so_l, K: tl.constexpr,
              KP: tl.constexpr, HAS_INIT: tl.constexpr, HAS_BIAS: tl.constexpr,
              SILU: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr, cdt, ATOMIC: tl.constexpr):
    """One tile's x gradient, stored, and its weight and bias gradient partial sums.

    :math:`\bar p` of the tile's steps and of the ``K - 1`` after them (the
    taps of :math:`\bar x` reach that far ahead) is computed once and parked
    in this program's scratch row ``scr`` (BD, BT + KP); the shifted taps are
    read back from there (L1) instead of recomputing the pre-activation, its
    sigmoid and ``K`` input loads at every shift.
    """
    g0 = _dpre(xb, ib, w_ptr, bias, gb, d, d64, dm, t, L, sx_d, sx_l, si_d, si_l, sg_d, sg_l,
               K, HAS_INIT, SILU, cdt)  # (BD, BT)
    wl = tl.load(w_ptr + d * K + (K - 1), mask=dm, other=0.0)  # (BD,)
    dx = wl[:, None] * g0  # (BD, BT)
    if K > 1:
        j = tl.arange(0, BT)  # (BT,)
        jh = tl.arange(0, KP)  # (KP,)
        W: tl.constexpr = BT + KP
        rows = tl.arange(0, BD)[:, None] * W  # (BD, 1)
        gh = _dpre(xb, ib, w_ptr, bias, gb, d, d64, dm, t0 + BT + jh, L, sx_d, sx_l, si_d,
                   si_l, sg_d, sg_l, K, HAS_INIT, SILU, cdt)  # (BD, KP): the steps after the tile
        tl.store(scr + rows + j[None, :], g0)
        tl.store(scr + rows + (BT + jh)[None, :], gh)
        tl.debug_barrier()  # the shifted reads below cross other threads' writes
        for k in tl.static_range(K - 1):
            wk = tl.load(w_ptr + d * K + k, mask=dm, other=0.0)  # (BD,)
            dx += wk[:, None] * tl.load(scr + rows + (j + (K - 1 - k))[None, :])  # p̄_{s+K-1-k}
    tl.store(dx_ptr + pid_b * so_b + d64[:, None] * so_d + t.to(tl.int64)[None, :] * so_l,
             dx.to(dx_ptr.dtype.element_ty), mask=dm[:, None] & (t < L)[None, :])

    # Per-tile channel sums of the weight and bias gradients: stored per tile and summed
    # on the host (deterministic), or ATOMIC: added into the caller's zeroed (dim, K), (dim,).
    for k in tl.static_range(K):
        xk = _window(xb, ib, d64, dm, t + (k - (K - 1)), L, sx_d, sx_l, si_d, si_l, K, HAS_INIT,
                     cdt)  # (BD, BT)
        if ATOMIC:
            tl.atomic_add(dw_ptr + d64 * K + k, tl.sum(g0 * xk, axis=1), mask=dm, sem="relaxed")
        else:
            tl.store(dw_ptr + (row + d64) * K + k, tl.sum(g0 * xk, axis=1), mask=dm)
    if HAS_BIAS:
        if ATOMIC:
            tl.atomic_add(db_ptr + d64, tl.sum(g0, axis=1), mask=dm, sem="relaxed")
        else:
            tl.store(db_ptr + row + d64, tl.sum(g0, axis=1), mask=dm)


# --------------------------------------------------------------------------- #
# Kernels
# --------------------------------------------------------------------------- #
@triton.jit
def _tile(dim, L, BD: tl.constexpr, BT: tl.constexpr):
    """This program's tile: channels ``d`` (BD,) and steps ``t`` (BT,) of one batch row.

    (batch, time block) runs on grid axis 0, the only one allowed more than
    65535 programs; channel blocks on axis 1.
    """
    pid = tl.program_id(0)
    n_t = tl.cdiv(L, BT)
    pid_t = pid % n_t
    pid_b = (pid // n_t).to(tl.int64)
    d = tl.program_id(1) * BD + tl.arange(0, BD)  # (BD,)
    t = pid_t * BT + tl.arange(0, BT)  # (BT,)
    return pid, pid_t, pid_b, d, d < dim, d.to(tl.int64), t


@triton.jit
def _fwd_kernel(x_ptr, init_ptr, w_ptr, b_ptr, y_ptr, dim, L,
                sx_b, sx_d, sx_l, si_b, si_d, si_l, so_b, so_d, so_l,
                K: tl.constexpr, HAS_INIT: tl.constexpr, HAS_BIAS: tl.constexpr,
                SILU: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr):
    _pid, pid_t, pid_b, d, dm, d64, t = _tile(dim, L, BD, BT)
    cdt = w_ptr.dtype.element_ty
    xb = x_ptr + pid_b * sx_b
    ib = init_ptr + pid_b * si_b
    bias = _bias(b_ptr, d, dm, HAS_BIAS, cdt, BD)
    # Only the first time block reaches back before t = 0 (BT >= K - 1): the
    # others skip the initial_state loads.
    if HAS_INIT:
        if pid_t == 0:
            p = _preact(xb, ib, w_ptr, bias, d, d64, dm, t, L, sx_d, sx_l, si_d, si_l, K, True,
                        cdt)  # (BD, BT)
        else:
            p = _preact(xb, ib, w_ptr, bias, d, d64, dm, t, L, sx_d, sx_l, si_d, si_l, K, False,
                        cdt)  # (BD, BT)
    else:
        p = _preact(xb, ib, w_ptr, bias, d, d64, dm, t, L, sx_d, sx_l, si_d, si_l, K, False,
                    cdt)  # (BD, BT)
    if SILU:
        p = p * _sigmoid(p)
    offs = pid_b * so_b + d64[:, None] * so_d + t[None, :] * so_l
    tl.store(y_ptr + offs, p.to(y_ptr.dtype.element_ty), mask=dm[:, None] & (t < L)[None, :])


@triton.jit
def _bwd_kernel(x_ptr, init_ptr, w_ptr, b_ptr, dy_ptr, dx_ptr, dinit_ptr, dw_ptr, db_ptr,
                scr_ptr, dim, L, sx_b, sx_d, sx_l, si_b, si_d, si_l, sg_b, sg_d, sg_l,
                so_b, so_d, so_l,
                K: tl.constexpr, KP: tl.constexpr, HAS_INIT: tl.constexpr,
                HAS_BIAS: tl.constexpr, SILU: tl.constexpr, BD: tl.constexpr,
                BT: tl.constexpr, ATOMIC: tl.constexpr):
    pid, pid_t, pid_b, d, dm, d64, t = _tile(dim, L, BD, BT)
    cdt = w_ptr.dtype.element_ty
    xb = x_ptr + pid_b * sx_b
    ib = init_ptr + pid_b * si_b
    gb = dy_ptr + pid_b * sg_b
    bias = _bias(b_ptr, d, dm, HAS_BIAS, cdt, BD)

    row = pid.to(tl.int64) * dim  # pid = pid_b * n_t + pid_t
    scr = scr_ptr + (pid.to(tl.int64) * tl.num_programs(1) + tl.program_id(1)) * (BD * (BT + KP))
    t0 = pid_t * BT
    # As in the forward pass, only the first time block reads initial_state.
    if HAS_INIT:
        if pid_t == 0:
            _bwd_tile(xb, ib, w_ptr, bias, gb, dx_ptr, dw_ptr, db_ptr, scr, d, d64, dm, t, t0, row,
                      pid_b, L, sx_d, sx_l, si_d, si_l, sg_d, sg_l, so_b, so_d, so_l, K, KP, True,
                      HAS_BIAS, SILU, BD, BT, cdt, ATOMIC)
        else:
            _bwd_tile(xb, ib, w_ptr, bias, gb, dx_ptr, dw_ptr, db_ptr, scr, d, d64, dm, t, t0, row,
                      pid_b, L, sx_d, sx_l, si_d, si_l, sg_d, sg_l, so_b, so_d, so_l, K, KP, False,
                      HAS_BIAS, SILU, BD, BT, cdt, ATOMIC)
    else:
        _bwd_tile(xb, ib, w_ptr, bias, gb, dx_ptr, dw_ptr, db_ptr, scr, d, d64, dm, t, t0, row,
                  pid_b, L, sx_d, sx_l, si_d, si_l, sg_d, sg_l, so_b, so_d, so_l, K, KP, False,
                  HAS_BIAS, SILU, BD, BT, cdt, ATOMIC)

    if HAS_INIT:  # noqa: SIM102 (a compile-time flag, then a runtime test)
        if pid_t == 0:
            # The K-1 samples before t = 0: times -(K-1) .. -1 (padded to KP).
            s = tl.arange(0, KP) - (K - 1)  # (KP,)
            # p̄ is zero before t = 0, so the k = K - 1 term vanishes.
            dh = _grad_input(tl.zeros([BD, KP], dtype=cdt), xb, ib, w_ptr, bias, gb, d, d64, dm,
                             s, L, sx_d, sx_l, si_d, si_l, sg_d, sg_l, K, HAS_INIT, SILU,
                             cdt)  # (BD, KP)
            # dinit is contiguous (b, dim, K-1).
            offs = (pid_b * dim + d64[:, None]) * (K - 1) + (s + (K - 1))[None, :]
            tl.store(dinit_ptr + offs, dh, mask=dm[:, None] & (s < 0)[None, :])


# --------------------------------------------------------------------------- #
# Host side
# --------------------------------------------------------------------------- #
def _blocks(x: torch.Tensor, backward: bool = False) -> tuple[int, int, int]:
    """``(BD, BT, num_warps)``: a tile long along the axis contiguous in memory.

    The backward pass gets 8 warps (8 elements a thread): with 4, its ``K``
    recomputed pre-activations needed 255 registers and spilled (ptxas for
    sm_90a, bfloat16, K = 4, SiLU, initial_state); with 8 it needs 89
    (contiguous) / 128 (channel-last) registers, 180 / 168 with
    initial_state, and spills nothing, float32 included.
    """
    if _BLOCKS_OVERRIDE is not None:
        return _BLOCKS_OVERRIDE
    dim, L = x.shape[1], x.shape[2]
    if x.stride(1) == 1 and x.stride(2) != 1:  # channel-last
        BD, BT = 64, 32
    else:
        BD, BT = 16, 128
    return min(BD, max(2, next_pow2(dim))), min(BT, max(16, next_pow2(L))), 8 if backward else 4


def _tiles(x: torch.Tensor, K: int, backward: bool = False) -> tuple[int, int, int]:
    BD, BT, nw = _blocks(x, backward)
    # The kernels read initial_state in the first time block only.
    return BD, max(BT, next_pow2(K - 1)), nw


def _grid(x: torch.Tensor, BD: int, BT: int) -> tuple[int, int]:
    b, dim, L = x.shape
    return b * cdiv(L, BT), cdiv(dim, BD)


def _forward(x, weight, bias, init, silu: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """The convolution of ``x`` (b, dim, L), into a new contiguous tensor or into ``out`` (any strides)."""
    b, dim, L = x.shape
    K = weight.shape[1]
    BD, BT, nw = _tiles(x, K)
    y = torch.empty((b, dim, L), device=x.device, dtype=x.dtype) if out is None else out
    has_init = init is not None and K > 1
    ini = init if has_init else weight
    si = init.stride() if has_init else (0, 0, 0)
    launch(_fwd_kernel, _grid(x, BD, BT),
           x, ini, weight, bias if bias is not None else weight, y, dim, L, *x.stride(), *si, *y.stride(),
           K=K, HAS_INIT=has_init, HAS_BIAS=bias is not None, SILU=silu, BD=BD, BT=BT,
           num_warps=nw)
    return y


def _backward(dy, x, weight, bias, init, silu: bool, dx_out: torch.Tensor | None = None,
              dw_out: torch.Tensor | None = None, db_out: torch.Tensor | None = None):
    """``(dx, dw, dbias, dinit)``. ``dx_out``: a view to write dx into; ``dw_out``, ``db_out``:
    zeroed contiguous ``(dim, K)``, ``(dim,)`` tensors in the weight's dtype that the kernel adds
    its per-tile sums into with atomics (one memset the caller shares with other gradients, no
    host sums; not bitwise reproducible), returned as dw and dbias."""
    b, dim, L = x.shape
    K = weight.shape[1]
    BD, BT, nw = _tiles(x, K, backward=True)
    grid = _grid(x, BD, BT)
    cdt = weight.dtype
    has_init = init is not None and K > 1
    # dx takes x's layout, so the gradient of a channel-last view is channel-last too.
    dx = torch.empty_like(x) if dx_out is None else dx_out  # dx_out: a view to write into (any strides)
    atomic = dw_out is not None or db_out is not None
    if atomic:
        check_buffer("dw_out", dw_out, (dim, K), cdt)
        check_buffer("db_out", db_out, (dim,) if bias is not None else None, cdt)
        dw, db = dw_out, (db_out if bias is not None else dw_out)
    else:
        dw = torch.empty(grid[0], dim, K, device=x.device, dtype=cdt)  # (b * time blocks, dim, K)
        db = torch.empty(grid[0], dim, device=x.device, dtype=cdt) if bias is not None else dw
    dinit = (torch.empty(b, dim, K - 1, device=x.device, dtype=cdt) if has_init else dw)
    KP = max(2, next_pow2(K - 1))
    # Each program's p̄ (its tile and the K - 1 steps after it), read back shifted:
    # transient, about the size of x in float32 (its price for not recomputing
    # the pre-activation K times).
    scratch = torch.empty(grid[0] * grid[1] * BD * (BT + KP) if K > 1 else 1, device=x.device,
                          dtype=cdt)
    launch(_bwd_kernel, grid,
           x, init if has_init else weight, weight, bias if bias is not None else weight, dy, dx,
           dinit, dw, db, scratch, dim, L, *x.stride(), *(init.stride() if has_init else (0, 0, 0)),
           *dy.stride(), *dx.stride(),
           K=K, KP=KP, HAS_INIT=has_init, HAS_BIAS=bias is not None,
           SILU=silu, BD=BD, BT=BT, num_warps=nw, ATOMIC=atomic)
    if atomic:
        dbias = db if bias is not None else None
    else:
        dbias = db.sum(0) if bias is not None else None
        dw = dw.sum(0)
    if init is None:
        dh = None
    elif has_init:
        dh = dinit
    else:  # K == 1: an empty (b, dim, 0) state
        dh = torch.zeros_like(init)
    return dx, dw, dbias, dh


class _CausalConv1dTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, init, silu):
        ctx.save_for_backward(x, weight, bias, init)
        ctx.silu = silu
        return _forward(x, weight, bias, init, silu)

    @staticmethod
    def backward(ctx, dy):
        refuse_create_graph("causal_conv1d (backend='triton')", "use backend='torch'")
        x, weight, bias, init = ctx.saved_tensors
        with on_device(x):
            dx, dw, db, dh = _backward(dy, x, weight, bias, init, ctx.silu)
        return (dx if ctx.needs_input_grad[0] else None,
                dw if ctx.needs_input_grad[1] else None,
                db if ctx.needs_input_grad[2] else None,
                dh if ctx.needs_input_grad[3] else None, None)


def causal_conv1d_triton(x, weight, bias=None, initial_state=None, silu=False):
    """Causal depthwise conv1d with Triton kernels (inputs already validated).

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, dim, L)`` in any strides (a channel-last view is read in
        place); float32, float16, bfloat16 or float64.
    weight : torch.Tensor
        ``(dim, K)``, contiguous, float32 (float64 for float64 ``x``): the
        dtype in which sums are carried.
    bias : torch.Tensor or None
        ``(dim,)``, contiguous, ``weight``'s dtype.
    initial_state : torch.Tensor or None
        ``(batch, dim, K - 1)``, any float dtype and strides: the inputs
        before ``t = 0``.
    silu : bool
        Apply SiLU to the output.

    Returns
    -------
    torch.Tensor
        ``(batch, dim, L)``, contiguous, in ``x``'s dtype. Differentiable in
        ``x``, ``weight``, ``bias`` and ``initial_state``; the gradient of
        ``x`` has ``x``'s strides.

    Examples
    --------
    Needs CUDA tensors (or CPU tensors with ``TRITON_INTERPRET=1`` set before
    Triton is imported), hence skipped here:

    >>> import torch
    >>> from sciamba.kernels._triton_conv import causal_conv1d_triton
    >>> x = torch.randn(2, 8, 100, device="cuda")  # doctest: +SKIP
    >>> w = torch.randn(8, 4, device="cuda")  # doctest: +SKIP
    >>> causal_conv1d_triton(x, w, silu=True).shape  # doctest: +SKIP
    torch.Size([2, 8, 100])
    """
    with on_device(x):
        if grad_needed(x, weight, bias, initial_state):
            return _CausalConv1dTriton.apply(x, weight, bias, initial_state, bool(silu))
        return _forward(x, weight, bias, initial_state, bool(silu))
