r"""Triton kernels of one streaming step: the selective scan's (``selective_state_update``)
and the causal convolution's (``causal_conv1d_update``).

.. math::

    \Delta = \operatorname{softplus}(dt + b_\Delta), \qquad
    h \leftarrow e^{\Delta A} \odot h + \Delta\, x\, B, \qquad
    y = \textstyle\sum_n C[n]\, h[n] + D\, x \;(\odot\, \operatorname{silu}(z))

for every batch row and channel, in one launch: the PyTorch form of the same
step is a dozen small kernels, and a streaming step is nothing but such
launches (host time eagerly, GPU launch gaps when replayed as a CUDA graph).
One program owns ``BD`` channels of one batch row and their ``(BD, N)``
states, read once and written back in place.

The convolution's step likewise replaces the half dozen PyTorch ops of a
window shift, product, sum, bias and SiLU with one launch.

This module is private: :func:`sciamba.kernels.selective_state_update` and
:func:`sciamba.kernels.causal_conv1d_update` validate the inputs and call
:func:`selective_state_update_triton` and :func:`causal_conv1d_update_triton`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._backends import _interpret_enabled, on_device
from ._launch import cdiv, launch, next_pow2
from ._triton_scan import _sigmoid, _softplus

__all__ = ["causal_conv1d_update_triton", "conv_window_step", "selective_state_update_triton"]


@triton.jit
def _step_kernel(
    state_ptr,                     # (b, dim, N), updated in place
    x_ptr, dt_ptr, z_ptr, y_ptr,   # (b, dim)
    A_ptr,                         # (dim, N)
    B_ptr, C_ptr,                  # (b, G, N)
    D_ptr, bias_ptr,               # (dim,)
    dim, cpgB, GB, cpgC, GC,
    N: tl.constexpr, NP: tl.constexpr, BD: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    FAST: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1)
    cdt = state_ptr.dtype.element_ty
    d = pid_d * BD + tl.arange(0, BD)                               # (BD,)
    dm = d < dim
    n = tl.arange(0, NP)                                            # (NP,)
    m2 = dm[:, None] & (n < N)[None, :]                             # (BD, NP)
    row = pid_b.to(tl.int64) * dim + d                              # (BD,)

    x = tl.load(x_ptr + row, mask=dm, other=0.0).to(cdt)            # (BD,)
    dt = tl.load(dt_ptr + row, mask=dm, other=0.0).to(cdt)
    if HAS_BIAS:
        dt += tl.load(bias_ptr + d, mask=dm, other=0.0).to(cdt)
    if SOFTPLUS:
        dt = _softplus(dt, FAST)
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=m2, other=0.0).to(cdt)   # (BD, NP)
    Bm = tl.load(B_ptr + ((pid_b.to(tl.int64) * GB + d // cpgB) * N)[:, None] + n[None, :],
                 mask=m2, other=0.0).to(cdt)                        # (BD, NP)
    Cm = tl.load(C_ptr + ((pid_b.to(tl.int64) * GC + d // cpgC) * N)[:, None] + n[None, :],
                 mask=m2, other=0.0).to(cdt)
    s_off = row[:, None] * N + n[None, :]                           # (BD, NP)
    h = tl.load(state_ptr + s_off, mask=m2, other=0.0)
    h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bm        # (BD, NP)
    tl.store(state_ptr + s_off, h, mask=m2)
    y = tl.sum(h * Cm, axis=1)                                      # (BD,)
    if HAS_D:
        y += tl.load(D_ptr + d, mask=dm, other=0.0).to(cdt) * x
    if HAS_Z:
        zz = tl.load(z_ptr + row, mask=dm, other=0.0).to(cdt)
        y = y * zz * _sigmoid(zz, FAST)
    tl.store(y_ptr + row, y.to(y_ptr.dtype.element_ty), mask=dm)


def selective_state_update_triton(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    """One step with the Triton kernel (inputs validated: ``A``, ``B``, ``C``, ``D``, ``dt_bias``
    contiguous, ``B``, ``C`` grouped ``(b, G, N)``; ``x``, ``dt``, ``z`` may be strided views).

    ``state`` must be contiguous: it is updated in place.
    """
    b, dim, N = state.shape
    GB, GC = B.shape[1], C.shape[1]
    x, dt = x.contiguous(), dt.contiguous()
    z = z.contiguous() if z is not None else None
    y = torch.empty_like(x)
    NP = next_pow2(N)
    BD = max(1, min(next_pow2(dim), 4096 // NP, 64))
    fast = state.dtype == torch.float32 and state.device.type == "cuda" and not _interpret_enabled()
    with on_device(state):
        launch(_step_kernel, (cdiv(dim, BD), b), state, x, dt, z if z is not None else x, y, A,
               B, C, D if D is not None else A, dt_bias if dt_bias is not None else A,
               dim, dim // GB, GB, dim // GC, GC, N=N, NP=NP, BD=BD, HAS_D=D is not None,
               HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus), FAST=fast,
               num_warps=1 if BD * NP <= 1024 else 4)
    return y


@triton.jit
def conv_window_step(state_ptr, s_off, k, x, w, m, K: tl.constexpr):
    """One causal-convolution step on a tile of windows: ``sum_k w_k win_k``, with the window
    the ``K - 1`` inputs held in the state and then ``x``; the state is shifted in place to end
    with ``x``.

    ``s_off`` ``(..., KP)``: the offsets of each window's state slots; ``k`` its slot index,
    broadcastable to them; ``x``, ``m`` ``(..., 1)``: the new inputs and the mask of valid
    windows; ``w`` ``(..., KP)``: the weights, in the compute dtype. Returns ``(...)``.
    Shared by the convolution's step kernel and the fused Mamba layer step.
    """
    old = tl.load(state_ptr + s_off, mask=m & (k < K - 1), other=0.0)
    p = tl.sum(tl.where(k == K - 1, x.to(w.dtype), old.to(w.dtype)) * w, axis=len(s_off.shape) - 1)
    # Shift: slot j takes slot j + 1 (x for the last). Every thread has read its slots
    # above; the barrier keeps any of them from being overwritten before that.
    nxt = tl.load(state_ptr + s_off + 1, mask=m & (k < K - 2), other=0.0)
    tl.debug_barrier()
    tl.store(state_ptr + s_off, tl.where(k == K - 2, x.to(state_ptr.dtype.element_ty), nxt), mask=m & (k < K - 1))
    return p


@triton.jit
def _conv_step_kernel(
    x_ptr,                         # (b, dim), strides sx_b, sx_d
    state_ptr,                     # (b, dim, K-1), contiguous, updated in place
    w_ptr, b_ptr,                  # (dim, K), (dim,) in the compute dtype
    y_ptr,                         # (b, dim), contiguous
    dim, sx_b, sx_d,
    K: tl.constexpr, KP: tl.constexpr, BD: tl.constexpr,
    HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1)
    d = pid_d * BD + tl.arange(0, BD)                               # (BD,)
    dm = d < dim
    k = tl.arange(0, KP)                                            # (KP,) window slot, K-1 = x
    row = pid_b.to(tl.int64) * dim + d                              # (BD,)
    x = tl.load(x_ptr + pid_b.to(tl.int64) * sx_b + d.to(tl.int64) * sx_d, mask=dm, other=0.0)
    w = tl.load(w_ptr + d[:, None] * K + k[None, :], mask=dm[:, None] & (k < K)[None, :], other=0.0)
    p = conv_window_step(state_ptr, row[:, None] * (K - 1) + k[None, :], k[None, :], x[:, None], w,
                         dm[:, None], K)                            # (BD,)
    if HAS_BIAS:
        p += tl.load(b_ptr + d, mask=dm, other=0.0)
    if SILU:
        p = p / (1.0 + tl.exp(-p))
    tl.store(y_ptr + row, p.to(y_ptr.dtype.element_ty), mask=dm)


def causal_conv1d_update_triton(x, conv_state, weight, bias, silu):
    """One convolution step with the Triton kernel (inputs validated: ``weight`` ``(dim, K)`` and
    ``bias`` contiguous in the compute dtype; ``conv_state`` contiguous ``(b, dim, K-1)``)."""
    b, dim = x.shape
    K = weight.shape[1]
    y = torch.empty(b, dim, device=x.device, dtype=x.dtype)
    BD = max(1, min(next_pow2(dim), 128))
    with on_device(x):
        launch(_conv_step_kernel, (cdiv(dim, BD), b), x, conv_state if K > 1 else y, weight,
               bias if bias is not None else weight, y, dim, x.stride(0), x.stride(1),
               K=K, KP=next_pow2(K), BD=BD, HAS_BIAS=bias is not None, SILU=bool(silu), num_warps=1)
    return y
