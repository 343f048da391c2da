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
from ._launch import cdiv, launch, next_pow2

__all__ = ["eps_pair", "rms_norm_triton"]


@triton.jit
def _tile(pid, M, D, BM: tl.constexpr, BD: tl.constexpr):
    rows = pid * BM + tl.arange(0, BM)  # (BM,)
    cols = tl.arange(0, BD)  # (BD,)
    m = (rows < M)[:, None] & (cols < D)[None, :]  # (BM, BD)
    off = rows.to(tl.int64)[:, None] * D + cols[None, :]  # (BM, BD)
    return rows, cols, m, off


@triton.jit
def _fwd_kernel(x_ptr, res_ptr, w_ptr, y_ptr, h_ptr, rstd_ptr, M, D, eps_hi, eps_lo,
                HAS_RES: tl.constexpr, HAS_W: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr):
    cdt = rstd_ptr.dtype.element_ty
    rows, cols, m, off = _tile(tl.program_id(0), M, D, BM, BD)
    x = tl.load(x_ptr + off, mask=m, other=0.0).to(cdt)  # (BM, BD)
    if HAS_RES:
        # h = x + residual, rounded to h's dtype before it is normalized (as the
        # unfused add would store it).
        h = (x + tl.load(res_ptr + off, mask=m, other=0.0).to(cdt)).to(h_ptr.dtype.element_ty)
        tl.store(h_ptr + off, h, mask=m)
        x = h.to(cdt)
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
def _bwd_kernel(x_ptr, w_ptr, g_ptr, gh_ptr, rstd_ptr, dx_ptr, dx2_ptr, dw_ptr, M, D,
                HAS_W: tl.constexpr, HAS_GH: tl.constexpr, HAS_DX2: tl.constexpr,
                BM: tl.constexpr, BD: tl.constexpr):
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
    if HAS_GH:  # the gradient reaching h = x + residual directly (the residual stream)
        dx += tl.load(gh_ptr + off, mask=m, other=0.0).to(cdt)
    tl.store(dx_ptr + off, dx.to(dx_ptr.dtype.element_ty), mask=m)
    if HAS_DX2:  # the same gradient in a second dtype (x's, when the residual's differs)
        tl.store(dx2_ptr + off, dx.to(dx2_ptr.dtype.element_ty), mask=m)
    if HAS_W:
        tl.store(dw_ptr + pid.to(tl.int64) * D + cols, tl.sum(g * xhat, axis=0), mask=cols < D)


def _blocks(D: int, interpret: bool) -> tuple[int, int, int]:
    """``(BM, BD, num_warps)``: whole rows, about 4096 elements a program."""
    BD = next_pow2(D)
    if interpret:
        return 4, BD, 1  # several programs and a partial last one even on tiny tests
    BM = max(1, min(64, 4096 // BD))
    return BM, BD, 4 if BM * BD <= 4096 else 8


def eps_pair(eps: float) -> tuple[float, float]:
    """``eps`` as two float32 numbers whose sum restores it: kernel scalars are float32, and
    one float32 left a float64 eps off by ~1e-11 in the norm's ``r`` (their sum: ~1e-16)."""
    hi = struct.unpack("f", struct.pack("f", eps))[0]
    return hi, eps - hi


def _forward(x2, res2, w, eps, cdt, out_dtype):
    """``(y, h, rstd)``: ``h = x2 + res2`` in ``res2``'s dtype (None without ``res2``)."""
    M, D = x2.shape
    BM, BD, nw = _blocks(D, _interpret_enabled())
    y = torch.empty(M, D, device=x2.device, dtype=out_dtype)
    h = torch.empty_like(res2) if res2 is not None else None
    rstd = torch.empty(M, device=x2.device, dtype=cdt)
    eps_hi, eps_lo = eps_pair(eps)
    launch(_fwd_kernel, (cdiv(M, BM),), x2, res2 if res2 is not None else rstd,
           w if w is not None else rstd, y, h if h is not None else rstd, rstd, M, D, eps_hi, eps_lo,
           HAS_RES=res2 is not None, HAS_W=w is not None, BM=BM, BD=BD, num_warps=nw)
    return y, h, rstd


class _RMSNormTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, res2, w, eps, cdt, out_dtype):
        y, h, rstd = _forward(x2, res2, w, eps, cdt, out_dtype)
        ctx.save_for_backward(h if h is not None else x2, w, rstd)
        ctx.eps, ctx.x_dtype, ctx.has_res = eps, x2.dtype, res2 is not None
        ctx.set_materialize_grads(False)
        return (y, h) if h is not None else y

    @staticmethod
    def backward(ctx, gy, gh=None):
        xs, w, rstd = ctx.saved_tensors  # xs: the normalized input (h with a residual)
        if gy is None:
            gy = torch.zeros_like(xs)
        if torch.is_grad_enabled():
            # create_graph=True: the kernels' outputs would carry no graph, and a
            # second derivative would silently miss terms; the same formulas in
            # differentiable torch ops instead (rare, so speed does not matter).
            dx, dw = _backward_differentiable(xs, w, gy, ctx.eps, rstd.dtype)
            if gh is not None:
                dx = dx + gh
            return (dx.to(ctx.x_dtype), dx if ctx.has_res else None, dw, None, None, None)
        M, D = xs.shape
        BM, BD, nw = _blocks(D, _interpret_enabled())
        grid = cdiv(M, BM)
        dx = torch.empty_like(xs)  # in h's dtype with a residual, else x's
        two = ctx.has_res and ctx.x_dtype != xs.dtype
        dx2 = torch.empty(M, D, device=xs.device, dtype=ctx.x_dtype) if two else dx
        dw_part = (torch.empty(grid, D, device=xs.device, dtype=rstd.dtype) if w is not None
                   else rstd)
        with on_device(xs):
            launch(_bwd_kernel, (grid,), xs, w if w is not None else rstd, gy.contiguous(),
                   gh.contiguous() if gh is not None else rstd, rstd, dx, dx2, dw_part, M, D,
                   HAS_W=w is not None, HAS_GH=gh is not None, HAS_DX2=two, BM=BM, BD=BD,
                   num_warps=nw)
        dw = dw_part.sum(0) if w is not None and ctx.needs_input_grad[2] else None
        return dx2, (dx if ctx.has_res else None), dw, None, None, None


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


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None, eps: float, cdt: torch.dtype,
                    residual: torch.Tensor | None = None, out_dtype: torch.dtype | None = None):
    """RMS normalization of the rows of ``x`` (or of ``x + residual``) with Triton.

    Inputs are already validated (see :func:`sciamba.kernels.rms_norm`).

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
    residual : torch.Tensor or None
        ``x``'s shape; when given, ``h = x + residual`` (in ``residual``'s
        dtype) is normalized and returned too.
    out_dtype : torch.dtype or None
        dtype of the normalized output; None: ``h``'s (``x``'s without a
        residual).

    Returns
    -------
    y : torch.Tensor
        ``x``'s shape in ``out_dtype``; differentiable in ``x``, ``residual``
        and ``weight``.
    h : torch.Tensor
        Only with ``residual``: ``x + residual``.

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
    res2 = None
    if residual is not None:
        res2 = residual.reshape(-1, shape[-1])
        res2 = res2 if res2.is_contiguous() else res2.contiguous()
    out_dtype = out_dtype or (residual.dtype if residual is not None else x.dtype)
    with on_device(x2):
        if grad_needed(x, residual, weight):
            out = _RMSNormTriton.apply(x2, res2, weight, float(eps), cdt, out_dtype)
        else:
            y, h, _ = _forward(x2, res2, weight, float(eps), cdt, out_dtype)
            out = (y, h) if h is not None else y
    if residual is None:
        return out.reshape(shape)
    return out[0].reshape(shape), out[1].reshape(shape)
