r"""The Mamba block's training path as one autograd node (the Triton backend).

:meth:`MambaBlock._mix <sciamba.nn.MambaBlock>` written as a chain of
differentiable ops records about fifteen autograd nodes per block (casts,
expands, five products, the convolution, the scan, their sums), and each costs
host time at every forward and backward: a short training step waits on the
host, not on the GPU. Here the same math runs as a single node whose backward
is written out (as mamba_ssm's ``mamba_inner_fn`` does for its CUDA kernels),
with every product laid out so that no operand or gradient is copied into
another layout:

.. math::

    x_i, z &= W_x x^\top,\; W_z x^\top \qquad
    u = \operatorname{silu}(\operatorname{conv}(x_i)) \\
    (\delta_r, B, C) &= W_{xp} u \qquad \delta = W_{dt} \delta_r \\
    y &= \operatorname{scan}(u, \delta + b_{dt}, A = -e^{A_{\log}}, B, C, D, z)
    \qquad \text{out} = y^\top W_o^\top

and backward, per batch row (``(M K)`` weights, ``(b K L)`` channel-major
activations, sums over the batch for the weights):

.. math::

    \bar y = W_o^\top \overline{\text{out}}^\top,\;
    \bar W_o = \textstyle\sum_b \overline{\text{out}}^\top y^\top, \quad
    \bar\delta_r = W_{dt}^\top \bar\delta,\;
    \bar u \mathrel{+}= W_{xp}^\top (\bar\delta_r, \bar B, \bar C), \quad
    \bar A_{\log} = \bar A \odot A, \quad
    \bar x = \bar x_i^\top W_x + \bar z^\top W_z.

The node keeps what the backward reads (the cast input, :math:`x_i, z` as
one buffer, :math:`u`, :math:`(\delta_r, B, C)`, :math:`\delta`, the scan's
checkpoints) but not :math:`y`: the scan's backward recomputes it for
:math:`\bar W_o`, as mamba_ssm recomputes ``out_z``, so the node holds less
memory between forward and backward than the composite path.

Only the plain training case comes here (no recurrent state, gaps or
padding, a gradient needed, Triton kernels); everything else keeps the
composite path, which is also the reference the tests hold this node to.
"""

from __future__ import annotations

import torch

from sciamba.kernels import _triton_conv as tconv
from sciamba.kernels import _triton_scan as tscan
from sciamba.kernels._backends import on_device, refuse_create_graph
from sciamba.kernels._math import compute_dtype

__all__ = ["mamba_inner"]


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # A dtype test costs far less host time than a no-op .to() call.
    return t if t.dtype == dtype else t.to(dtype)


def _wsum(g: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A broadcast weight's gradient: ``sum_b g[b] @ x[b]`` in ``dtype``."""
    return torch.bmm(g, x).sum(0, dtype=dtype)  # (M K)


class _MambaInner(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_in, b_in, w_conv, b_conv, w_xp, w_dt, b_dt, A_log, D, w_out, b_out, mm_dtype, N):
        b = x.shape[0]
        E, R = w_dt.shape
        cdt = compute_dtype(mm_dtype)
        xc = _cast(x, mm_dtype)  # (b L d)
        # The weights broadcast over the batch (stride 0), kept for the backward's products too.
        Wi = _cast(w_in, mm_dtype).expand(b, -1, -1)  # (b 2E d)
        Wxp = _cast(w_xp, mm_dtype).expand(b, -1, -1)  # (b R+2N E)
        Wdt = _cast(w_dt, mm_dtype).expand(b, -1, -1)  # (b E R)
        WoT = _cast(w_out, mm_dtype).t().expand(b, -1, -1)  # (b E d)
        # One product for both halves; the convolution and the scan read them as views
        # (each batch row's (E, L) block is contiguous, rows 2E*L apart).
        xz = torch.bmm(Wi, xc.transpose(1, 2))  # (b 2E L)
        if b_in is not None:
            xz += b_in[:, None].to(mm_dtype)
        xi, z = xz[:, :E], xz[:, E:]  # (b E L) views
        wc = _cast(w_conv.reshape(E, -1), cdt)  # (E k), from nn.Conv1d's (E 1 k)
        bc = None if b_conv is None else _cast(b_conv, cdt)  # (E,)
        u = tconv._forward(xi, wc, bc, None, silu=True)  # (b E L)
        x_dbl = torch.bmm(Wxp, u)  # (b R+2N L)
        delta = torch.bmm(Wdt, x_dbl[:, :R])  # (b E L)
        Bm = x_dbl[:, None, R:R + N].contiguous()  # (b 1 N L)
        Cm = x_dbl[:, None, R + N:].contiguous()  # (b 1 N L)
        A = torch.exp(_cast(A_log, cdt)).neg_()  # (E N)
        Dc, bdt = _cast(D, cdt), _cast(b_dt, cdt)  # (E,), (E,)
        cfg = tscan._config_for(u, N)
        pr = tscan._problem(u, A, Bm, Cm, cfg)
        y, _, ckpt = tscan._forward(u, delta, A, Bm, Cm, Dc, z, bdt, None, True, pr, save=True)  # (b E L)
        out = torch.bmm(y.transpose(1, 2), WoT)  # (b L d), contiguous
        if b_out is not None:
            out += b_out.to(mm_dtype)
        # y is not kept: the scan's backward recomputes it for the output weight's gradient.
        ctx.save_for_backward(xc, Wi, wc, bc, Wxp, Wdt, WoT, xz, u, x_dbl, delta, Bm, Cm, A, Dc, bdt, ckpt)
        ctx.cfg, ctx.has_b_in, ctx.has_b_out = cfg, b_in is not None, b_out is not None
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (x, w_in, b_in, w_conv, b_conv, w_xp, w_dt,
                                                                     b_dt, A_log, D, w_out, b_out))
        return out

    @staticmethod
    def backward(ctx, dout):
        refuse_create_graph("the fused Mamba block (backend='triton')", "use MambaBlock(backend='torch')")
        tscan._alert_atomics("the fused Mamba block's scan backward (backend='triton')")
        xc, Wi, wc, bc, Wxp, Wdt, WoT, xz, u, x_dbl, delta, Bm, Cm, A, Dc, bdt, ckpt = ctx.saved_tensors
        mm_dtype, f32 = xc.dtype, A.dtype
        E, R = Wdt.shape[1:]
        with on_device(u):
            # Gradients are dropped as soon as they are used, to keep the peak of this
            # backward near the composite path's, which frees them node by node.
            g = _cast(dout, mm_dtype)  # (b L d)
            gT = g.transpose(1, 2)  # (b d L), a view
            dy = torch.bmm(WoT, gT)  # (b E L), contiguous
            db_out = g.sum((0, 1), dtype=f32) if ctx.has_b_out else None
            pr = tscan._problem(u, A, Bm, Cm, ctx.cfg, backward=True)
            dxz = torch.empty_like(xz)  # (b 2E L): the scan writes dz into its second half, the conv dx the first
            y = torch.empty_like(u)  # (b E L), the forward's output, recomputed by the scan's backward
            s = tscan._backward(dy, None, u, delta, A, Bm, Cm, Dc, xz[:, E:], bdt, None, True, ckpt, pr,
                                dz_out=dxz[:, E:], y_out=y)
            del dy
            dw_out = _wsum(gT, y.transpose(1, 2), f32)  # (d E)
            del g, gT, y
            ddelta = s.pop("delta")  # (b E L)
            dw_dt = _wsum(ddelta, x_dbl[:, :R].transpose(1, 2), f32)  # (E R)
            # dB, dC come back in B's dtype, i.e. the products' dtype
            dx_dbl = torch.cat([torch.bmm(Wdt.transpose(1, 2), ddelta), s.pop("B").squeeze(1),
                                s.pop("C").squeeze(1)], dim=1)  # (b R+2N L)
            del ddelta
            dw_xp = _wsum(dx_dbl, u.transpose(1, 2), f32)  # (R+2N E)
            du = s.pop("u").baddbmm_(Wxp.transpose(1, 2), dx_dbl)  # (b E L), in place
            del dx_dbl
            _, dw_conv, db_conv, _ = tconv._backward(du, xz[:, :E], wc, bc, None, True,
                                                     dx_out=dxz[:, :E])  # (E k), (E,)
            del du
            dw_in = _wsum(dxz, xc, f32)  # (2E d)
            db_in = dxz.sum((0, 2), dtype=f32) if ctx.has_b_in else None  # (2E,)
            dx = torch.bmm(dxz.transpose(1, 2), Wi)  # (b L d)
            del dxz
            dA_log = s["A"] * A  # (E N): A = -exp(A_log)
        grads = (dx, dw_in, db_in, dw_conv.unsqueeze(1), db_conv, dw_xp, dw_dt, s["delta_bias"], dA_log, s["D"],
                 dw_out, db_out)
        grads = tuple(None if gr is None or dt is None else _cast(gr, dt) for gr, dt in zip(grads, ctx.dtypes))
        return (*grads, None, None)


def mamba_inner(block, x: torch.Tensor, mm_dtype: torch.dtype) -> torch.Tensor:
    """``block``'s mixer output for ``x`` ``(b, L, d_model)`` through the fused node.

    Parameters
    ----------
    block : MambaBlock
        Its parameters are used as they are (no copies).
    x : torch.Tensor
        ``(b, L, d_model)``, on a device where the Triton kernels run.
    mm_dtype : torch.dtype
        The dtype of the products (autocast's, or ``x``'s).

    Returns
    -------
    torch.Tensor
        ``(b, L, d_model)`` in ``mm_dtype``, equal to the composite path's
        output (the tests compare values and every gradient).
    """
    with on_device(x):
        return _MambaInner.apply(
            x, block.in_proj.weight, block.in_proj.bias, block.conv1d.weight, block.conv1d.bias,
            block.x_proj.weight, block.dt_proj.weight, block.dt_proj.bias, block.A_log, block.D,
            block.out_proj.weight, block.out_proj.bias, mm_dtype, block.d_state,
        )
