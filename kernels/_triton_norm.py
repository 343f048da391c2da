r"""Triton kernels of the RMS normalization, forward and backward (``backend="triton"``).

Per row :math:`x \in \mathbb{R}^D` of the flattened input (see
:func:`sciamba.kernels.rms_norm`),

.. math::

    r = \Big(\tfrac{1}{D}\sum_i x_i^2 + \epsilon\Big)^{-1/2}, \qquad
    \hat x = r\, x, \qquad y = w \odot \hat x,

and, for the output gradient :math:`g`,

.. math::

    \bar x = r\,\Big(w \odot g - \hat x\, \tfrac{1}{D}\sum_i w_i g_i \hat x_i\Big),
    \qquad \bar w = \sum_{\text{rows}} g \odot \hat x.

One program owns ``BM`` whole rows (``BD >= D`` columns), so the row sums
never leave the program. The forward pass saves :math:`r` per row (one
number a row); the backward pass writes :math:`\bar x` and each program's
partial :math:`\bar w`, which the host sums over programs (deterministic, no
atomics). PyTorch's fused ``rms_norm`` backward reduces :math:`\bar w` down
the rows in a separate, poorly parallel kernel (100 us for 32768 x 256 on an
H100, 2026-11-24); here it costs one extra pass over a small buffer.

Sums are carried in float32 (float64 for float64 input).
"""

from __future__ import annotations

import struct

import torch
import triton
import triton.language as tl

from ._backends import _interpret_enabled, grad_needed, on_device
from ._launch import launch

__all__ = ["rms_norm_triton"]


@triton.jit
def _tile(pid, M, D, BM: tl.constexpr, BD: tl.constexpr):
    rows = pid * BM + tl.arange(0, BM)  # (BM,)
    cols = tl.arange(0, BD)  # (BD,)
    m = (rows < M)[:, None] & (cols < D)[None, :]  # (BM, BD)
    off = rows.to(tl.int64)[:, None] * D + cols[None, :]  # (BM, BD)
    return rows, cols, m, off


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, y_ptr, rstd_ptr, M, D, eps_hi, eps_lo,
                HAS_W: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr):
    cdt = rstd_ptr.dtype.element_ty
    rows, cols, m, off = _tile(tl.program_id(0), M, D, BM, BD)
    x = tl.load(x_ptr + off, mask=m, other=0.0).to(cdt)  # (BM, BD)
    # eps arrives as two float32 scalars (kernel scalars are float32): their sum
    # restores a float64 eps to ~1e-16 (one float32 was off by ~1e-11 in r).
    ms = tl.sum(x * x, axis=1) / D + eps_hi + eps_lo  # (BM,)
    r = 1.0 / tl.sqrt(ms)  # (BM,)
    y = x * r[:, None]  # (BM, BD)
    if HAS_W:
        y = y * tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(cdt)[None, :]
    tl.store(y_ptr + off, y.to(y_ptr.dtype.element_ty), mask=m)
    tl.store(rstd_ptr + rows, r, mask=rows < M)


@triton.jit
def _bwd_kernel(x_ptr, w_ptr, g_ptr, rstd_ptr, dx_ptr, dw_ptr, M, D,
                HAS_W: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr):
    cdt = rstd_ptr.dtype.element_ty
    pid = tl.program_id(0)
    rows, cols, m, off = _tile(pid, M, D, BM, BD)
    x = tl.load(x_ptr + off, mask=m, other=0.0).to(cdt)  # (BM, BD)
    g = tl.load(g_ptr + off, mask=m, other=0.0).to(cdt)  # (BM, BD)
    r = tl.load(rstd_ptr + rows, mask=rows < M, other=0.0)  # (BM,)
    xhat = x * r[:, None]  # (BM, BD)
    if HAS_W:
        wg = g * tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(cdt)[None, :]  # (BM, BD)
    else:
        wg = g
    c = tl.sum(wg * xhat, axis=1) / D  # (BM,)
    dx = (wg - xhat * c[:, None]) * r[:, None]  # (BM, BD)
    tl.store(dx_ptr + off, dx.to(dx_ptr.dtype.element_ty), mask=m)
    if HAS_W:
        tl.store(dw_ptr + pid.to(tl.int64) * D + cols, tl.sum(g * xhat, axis=0), mask=cols < D)


def _blocks(D: int, interpret: bool) -> tuple[int, int, int]:
    """``(BM, BD, num_warps)``: whole rows, about 4096 elements a program."""
    BD = triton.next_power_of_2(D)
    if interpret:
        return 4, BD, 1  # several programs and a partial last one even on tiny tests
    BM = max(1, min(64, 4096 // BD))
    return BM, BD, 4 if BM * BD <= 4096 else 8


def _forward(x2, w, eps, cdt):
    M, D = x2.shape
    BM, BD, nw = _blocks(D, _interpret_enabled())
    y = torch.empty_like(x2)
    rstd = torch.empty(M, device=x2.device, dtype=cdt)
    eps_hi = struct.unpack("f", struct.pack("f", eps))[0]  # eps = eps_hi + eps_lo
    eps_lo = eps - eps_hi
    launch(_fwd_kernel, (triton.cdiv(M, BM),), x2, w if w is not None else rstd, y, rstd, M, D, eps_hi,
           eps_lo, HAS_W=w is not None, BM=BM, BD=BD, num_warps=nw)
    return y, rstd


class _RMSNormTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, w, eps, cdt):
        y, rstd = _forward(x2, w, eps, cdt)
        ctx.save_for_backward(x2, w, rstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, gy):
        x2, w, rstd = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the kernels' outputs would carry no graph, and a
            # second derivative would silently miss terms; the same formulas in
            # differentiable torch ops instead (rare, so speed does not matter).
            return (*_backward_differentiable(x2, w, gy, ctx.eps, rstd.dtype), None, None)
        M, D = x2.shape
        BM, BD, nw = _blocks(D, _interpret_enabled())
        grid = triton.cdiv(M, BM)
        dx = torch.empty_like(x2)
        dw_part = (torch.empty(grid, D, device=x2.device, dtype=rstd.dtype) if w is not None
                   else rstd)
        with on_device(x2):
            launch(_bwd_kernel, (grid,), x2, w if w is not None else rstd, gy.contiguous(), rstd, dx,
                   dw_part, M, D, HAS_W=w is not None, BM=BM, BD=BD, num_warps=nw)
        dw = dw_part.sum(0) if w is not None and ctx.needs_input_grad[1] else None
        return dx, dw, None, None


def _backward_differentiable(x2, w, gy, eps, cdt):
    """``(dx, dw)`` of the module docstring's formulas, in differentiable torch ops."""
    x = x2.to(cdt)  # (M D)
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)  # (M 1)
    xhat = x * r  # (M D)
    g = gy.to(cdt)  # (M D)
    wg = g * w if w is not None else g  # (M D)
    dx = (wg - xhat * (wg * xhat).mean(-1, keepdim=True)) * r  # (M D)
    dw = (g * xhat).sum(0) if w is not None else None  # (D,)
    return dx.to(x2.dtype), dw


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None, eps: float,
                    cdt: torch.dtype) -> torch.Tensor:
    """RMS normalization of the rows of ``x`` with Triton (inputs already validated).

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D)`` with ``D <= _rms_norm.MAX_D`` (whole rows sit in registers),
        any float dtype; made contiguous.
    weight : torch.Tensor or None
        ``(D,)``, contiguous, in ``cdt``.
    eps : float
        Added to the mean square.
    cdt : torch.dtype
        Compute dtype: float32, or float64 for float64 ``x``.

    Returns
    -------
    torch.Tensor
        ``x``'s shape and dtype; differentiable in ``x`` and ``weight``.

    Examples
    --------
    Needs CUDA tensors (or CPU tensors with ``TRITON_INTERPRET=1`` set before
    Triton is imported), hence skipped here:

    >>> import torch
    >>> from sciamba.kernels._triton_norm import rms_norm_triton
    >>> x = torch.randn(3, 5, 8, device="cuda")  # doctest: +SKIP
    >>> rms_norm_triton(x, None, 1e-5, torch.float32).shape  # doctest: +SKIP
    torch.Size([3, 5, 8])
    """
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    x2 = x2 if x2.is_contiguous() else x2.contiguous()
    with on_device(x2):
        if grad_needed(x, weight):
            y = _RMSNormTriton.apply(x2, weight, float(eps), cdt)
        else:
            y, _ = _forward(x2, weight, float(eps), cdt)
    return y.reshape(shape)
