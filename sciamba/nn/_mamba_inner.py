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

Activations are channel-major, ``(K, b*L)`` buffers (``M = b*L`` positions),
so each projection is one matrix product over all positions: no weight is
broadcast over the batch, and each weight's gradient is one product whose
sum over batch and time happens inside it (float32 out of a bfloat16
product, where torch allows). The convolution and the scan read and write
``(b, K, L)`` views of these buffers (batch stride ``L``, channel stride
``b*L``). Backward, with :math:`X \in \mathbb{R}^{M \times d}`:

.. math::

    \bar y = W_o^\top \overline{\text{out}}^\top,\;
    \bar W_o = \overline{\text{out}}^\top y^\top, \quad
    \bar\delta_r = W_{dt}^\top \bar\delta,\;
    \bar u \mathrel{+}= W_{xp}^\top (\bar\delta_r, \bar B, \bar C), \quad
    \bar A_{\log} = \bar A \odot A, \quad
    \bar X = [\bar x_i; \bar z]^\top [W_x; W_z].

The scan adds :math:`\bar B, \bar C` straight into rows of the buffer of
:math:`(\bar\delta_r, \bar B, \bar C)`.

With observed time gaps :math:`g` (irregular sampling, left padding) the
step size is :math:`\Delta = \operatorname{softplus}(\delta + b_{dt})\, g`,
formed before the scan (the gap scales it after the softplus, which the
kernel would otherwise apply), and padded positions (:math:`g = 0`) enter
the convolution as zeros and leave the block as zeros, as on the composite
path:

.. math::

    \bar\delta = \bar\Delta\, g\, \sigma(\delta + b_{dt}), \qquad
    \bar b_{dt} = \textstyle\sum \bar\delta, \qquad
    \bar x_i,\ \overline{\text{out}} \text{ zeroed at padded positions.}

The node keeps what the backward reads (the cast input, :math:`x_i, z` as
one buffer, :math:`u`, :math:`(\delta_r, B, C)`, :math:`\delta`, the scan's
checkpoints) but not :math:`y`: the scan's backward recomputes it for
:math:`\bar W_o`, as mamba_ssm recomputes ``out_z``, so the node holds less
memory between forward and backward than the composite path.

Only training comes here (no recurrent state, a gradient needed, gaps that
need none, Triton kernels); everything else keeps the composite path, which
is also the reference the tests hold this node to.
"""

from __future__ import annotations

import torch

from sciamba.kernels import _triton_conv as tconv
from sciamba.kernels import _triton_scan as tscan
from sciamba.kernels._backends import on_device, refuse_create_graph
from sciamba.kernels._math import compute_dtype, discretize_delta, softplus_grad

__all__ = ["mamba_inner"]


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # A dtype test costs far less host time than a no-op .to() call.
    return t if t.dtype == dtype else t.to(dtype)


_MM_OUT_DTYPE: bool | None = None  # whether torch.mm(..., out_dtype=) works on CUDA here


def _wgrad(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A weight's gradient ``a @ b`` (the sum over batch and time inside the product) in ``dtype``.

    On CUDA a bfloat16 product writes float32 directly (``out_dtype``, where
    this torch has it): one rounding, and no separate cast.
    """
    global _MM_OUT_DTYPE
    if a.dtype == dtype:
        return torch.mm(a, b)
    if a.is_cuda and _MM_OUT_DTYPE is not False:
        try:
            out = torch.mm(a, b, out_dtype=dtype)
            _MM_OUT_DTYPE = True
            return out
        except torch.OutOfMemoryError:
            raise
        except (TypeError, RuntimeError, NotImplementedError):  # this torch has no mm.dtype for CUDA
            _MM_OUT_DTYPE = False
    return torch.mm(a, b).to(dtype)


def _rows(buf: torch.Tensor, lo: int, hi: int, b: int, L: int) -> torch.Tensor:
    """Rows ``lo:hi`` of a contiguous channel-major ``(K, b*L)`` buffer as a ``(b, hi-lo, L)`` view.

    One ``as_strided`` call (a slice, a view and a transpose would be three, each
    with its host cost).
    """
    return buf.as_strided((b, hi - lo, L), (L, b * L, 1), buf.storage_offset() + lo * b * L)


def _bc_view(buf: torch.Tensor, lo: int, N: int, b: int, L: int) -> torch.Tensor:
    """Rows ``lo:lo+N`` of a ``(K, b*L)`` buffer as the scan's ``(b, 1, N, L)`` B or C (one call)."""
    M = b * L
    return buf.as_strided((b, 1, N, L), (L, M, M, 1), buf.storage_offset() + lo * M)


class _MambaInner(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w_in, b_in, w_conv, b_conv, w_xp, w_dt, b_dt, A_log, D, w_out, b_out, gaps, pad, mm_dtype,
                N):
        b, L, d = x.shape
        M = b * L
        E, R = w_dt.shape
        cdt = compute_dtype(mm_dtype)
        # Activations are channel-major, (K, b*L): every product is one matrix product over all
        # b*L positions (no batch of broadcast weights), and the kernels read (b, K, L) views of them.
        x2 = _cast(x, mm_dtype).reshape(M, d)  # (M d)
        Wi, Wxp, Wdt, Wo = (_cast(w, mm_dtype) for w in (w_in, w_xp, w_dt, w_out))  # (2E d) (R+2N E) (E R) (d E)
        xz = torch.mm(Wi, x2.t())  # (2E M): x_i then z
        if b_in is not None:
            xz += b_in[:, None].to(mm_dtype)
        xi, z = _rows(xz, 0, E, b, L), _rows(xz, E, 2 * E, b, L)  # (b E L) views
        if pad is not None:
            xi.masked_fill_(pad[:, None, :], 0.0)  # padded conv inputs = the convolution's zero padding
        wc = _cast(w_conv.reshape(E, -1), cdt)  # (E k), from nn.Conv1d's (E 1 k)
        bc = None if b_conv is None else _cast(b_conv, cdt)  # (E,)
        u_buf = torch.empty(E, M, device=x.device, dtype=mm_dtype)  # (E M)
        u = _rows(u_buf, 0, E, b, L)  # (b E L)
        tconv._forward(xi, wc, bc, None, silu=True, out=u)
        x_dbl = torch.mm(Wxp, u_buf)  # (R+2N M): delta_r, B, C
        delta_buf = torch.mm(Wdt, x_dbl[:R])  # (E M): raw step sizes
        # B and C in the compute dtype, one copy: widened in the kernels they cost instructions at
        # every lane (see sciamba.kernels._triton_scan.float_bc).
        BC = _cast(x_dbl[R:], cdt)  # (2N M)
        Bm, Cm = _bc_view(BC, 0, N, b, L), _bc_view(BC, N, N, b, L)  # (b 1 N L) views
        Alog = _cast(A_log, cdt)  # (E N): the kernels take A = -exp(A_log) themselves (no launch)
        Dc, bdt = _cast(D, cdt), _cast(b_dt, cdt)  # (E,), (E,)
        delta, bias, softplus = _scan_steps(delta_buf, bdt, gaps, mm_dtype, b, L)  # (b E L)
        cfg = tscan._config_for(u, N)
        pr = tscan._problem(u, Alog, Bm, Cm, cfg)
        y, _, ckpt = tscan._forward(u, delta, Alog, Bm, Cm, Dc, z, bias, None, softplus, pr, save=True,
                                    a_log=True)  # (b E L)
        del delta
        out = torch.mm(y.transpose(0, 1).reshape(E, M).t(), Wo.t())  # (M d)
        if b_out is not None:
            out += b_out.to(mm_dtype)
        if pad is not None:
            out.masked_fill_(pad.reshape(M, 1), 0.0)  # padded positions leave the block as zeros
        # y is not kept: the scan's backward recomputes it for the output weight's gradient; nor are
        # gapped step sizes (recomputed from the raw ones).
        ctx.save_for_backward(x2, Wi, wc, bc, Wxp, Wdt, Wo, xz, u_buf, x_dbl, BC, delta_buf, Alog, Dc, bdt, ckpt,
                              gaps, pad)
        ctx.cfg, ctx.has_b_in, ctx.has_b_out, ctx.shape = cfg, b_in is not None, b_out is not None, (b, L, N)
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (x, w_in, b_in, w_conv, b_conv, w_xp, w_dt,
                                                                     b_dt, A_log, D, w_out, b_out))
        return out.view(b, L, d)

    @staticmethod
    def backward(ctx, dout):
        refuse_create_graph("the fused Mamba block (backend='triton')", "use MambaBlock(backend='torch')")
        tscan._alert_atomics("the fused Mamba block's scan backward (backend='triton')")
        (x2, Wi, wc, bc, Wxp, Wdt, Wo, xz, u_buf, x_dbl, BC, delta_buf, Alog, Dc, bdt, ckpt,
         gaps, pad) = ctx.saved_tensors
        b, L, N = ctx.shape
        M, d = x2.shape
        E, R = Wdt.shape
        mm_dtype, wdt, cdt = x2.dtype, ctx.dtypes[1], Alog.dtype  # wdt: the weights' dtype
        u = _rows(u_buf, 0, E, b, L)  # (b E L)
        delta, bias, softplus = _scan_steps(delta_buf, bdt, gaps, mm_dtype, b, L)  # (b E L)
        Bm, Cm = _bc_view(BC, 0, N, b, L), _bc_view(BC, N, N, b, L)  # (b 1 N L)
        with on_device(x2):
            # Gradients are dropped as soon as they are used, to keep the peak of this
            # backward near the composite path's, which frees them node by node.
            g = _cast(dout, mm_dtype).reshape(M, d)  # (M d)
            if pad is not None:
                g = g.masked_fill(pad.reshape(M, 1), 0.0)  # the output was zeroed there
            dy_buf = torch.mm(Wo.t(), g.t())  # (E M)
            db_out = g.sum(0, dtype=wdt) if ctx.has_b_out else None  # (d,)
            pr = tscan._problem(u, Alog, Bm, Cm, ctx.cfg, backward=True)
            dxz = torch.empty_like(xz)  # (2E M): the scan writes dz into the z rows, the conv dx the others
            y_buf = torch.empty_like(u_buf)  # (E M), the forward's output, recomputed by the scan's backward
            dbc = torch.zeros(2 * N, M, device=x2.device, dtype=cdt)  # (2N M): dB, dC, added by the scan
            # The per-channel gradients the scan and the convolution add up with atomics, in one
            # zeroed buffer: A_log's, D's, the Δ bias's, the convolution weight's and bias's.
            k = wc.shape[1]
            zeroed = tscan._zeroed_views(dict(A=(E, N), D=(E,), delta_bias=(E,) if bias is not None else None,
                                              w=(E, k), b=(E,) if bc is not None else None), x2.device, cdt)
            s = tscan._backward(_rows(dy_buf, 0, E, b, L), None, u, delta, Alog, Bm, Cm, Dc, _rows(xz, E, 2 * E, b, L),
                                bias, None, softplus, ckpt, pr, dz_out=_rows(dxz, E, 2 * E, b, L),
                                y_out=_rows(y_buf, 0, E, b, L), dB_out=_bc_view(dbc, 0, N, b, L),
                                dC_out=_bc_view(dbc, N, N, b, L), a_log=True, zeroed=zeroed)
            del dy_buf
            dw_out = _wgrad(g.t(), y_buf.t(), wdt)  # (d E)
            del g, y_buf, delta
            ddelta = s.pop("delta").transpose(0, 1).reshape(E, M)  # (E M), a view
            if gaps is not None:  # through Δ = softplus(raw + b)·gap, formed outside the scan
                ddelta = (_cast(ddelta, cdt) * gaps.reshape(1, M)
                          * softplus_grad(_cast(delta_buf, cdt) + bdt[:, None]))  # (E M)
                s["delta_bias"] = ddelta.sum(1)  # (E,)
                ddelta = _cast(ddelta, mm_dtype)
            dw_dt = _wgrad(ddelta, x_dbl[:R].t(), wdt)  # (E R)
            dx_dbl = torch.empty_like(x_dbl)  # (R+2N M)
            torch.mm(Wdt.t(), ddelta, out=dx_dbl[:R])  # (R M)
            dx_dbl[R:].copy_(dbc)  # (2N M), in the products' dtype
            del ddelta, dbc
            dw_xp = _wgrad(dx_dbl, u_buf.t(), wdt)  # (R+2N E)
            du = s.pop("u")  # (b E L), channel-major like u
            du.transpose(0, 1).reshape(E, M).addmm_(Wxp.t(), dx_dbl)  # (E M) view, in place
            del dx_dbl
            _, dw_conv, db_conv, _ = tconv._backward(du, _rows(xz, 0, E, b, L), wc, bc, None, True,
                                                     dx_out=_rows(dxz, 0, E, b, L), dw_out=zeroed["w"],
                                                     db_out=zeroed.get("b"))  # (E k), (E,)
            del du
            if pad is not None:
                _rows(dxz, 0, E, b, L).masked_fill_(pad[:, None, :], 0.0)  # x_i was zeroed there
            dw_in = _wgrad(dxz, x2, wdt)  # (2E d)
            db_in = dxz.sum(1, dtype=wdt) if ctx.has_b_in else None  # (2E,)
            dx = torch.mm(dxz.t(), Wi).view(b, L, d)  # (b L d)
            del dxz
            dA_log = s["A"]  # (E N): the kernel's gradient of A_log (dA times A = -exp(A_log))
        grads = (dx, dw_in, db_in, dw_conv.unsqueeze(1), db_conv, dw_xp, dw_dt, s["delta_bias"], dA_log, s["D"],
                 dw_out, db_out)
        grads = tuple(None if gr is None or dt is None else _cast(gr, dt) for gr, dt in zip(grads, ctx.dtypes))
        return (*grads, None, None, None, None)


def _scan_steps(raw: torch.Tensor, bias: torch.Tensor, gaps: torch.Tensor | None, mm_dtype: torch.dtype,
                b: int, L: int) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """The scan's ``(delta, delta_bias, delta_softplus)`` from the raw step sizes ``(E, M)``.

    Without gaps the kernel adds the bias and takes the softplus itself; with
    them, ``Δ = softplus(raw + b)·gap`` is formed here in the compute dtype
    (the bias's), then in the products' dtype, as on the composite path
    (:func:`sciamba.nn._mamba.selective_ssm`). ``gaps`` ``(b, L)`` is in the
    order of the buffer's ``M = b*L`` columns.
    """
    if gaps is None:
        return _rows(raw, 0, raw.shape[0], b, L), bias, True
    # As (1, E, M), so that the bias falls on E and the gaps on M.
    steps = discretize_delta(_cast(raw, bias.dtype)[None], bias, True, gaps.reshape(1, -1))[0]  # (E M)
    return _rows(steps.to(mm_dtype), 0, raw.shape[0], b, L), None, False


def mamba_inner(block, x: torch.Tensor, mm_dtype: torch.dtype, gaps: torch.Tensor | None = None,
                pad: torch.Tensor | None = None) -> torch.Tensor:
    """``block``'s mixer output for ``x`` ``(b, L, d_model)`` through the fused node.

    Parameters
    ----------
    block : MambaBlock
        Its parameters are used as they are (no copies).
    x : torch.Tensor
        ``(b, L, d_model)``, on a device where the Triton kernels run.
    mm_dtype : torch.dtype
        The dtype of the products (autocast's, or ``x``'s).
    gaps : torch.Tensor, optional
        ``(b, L)`` time gaps (checked: finite, >= 0, the compute dtype), which
        scale the step sizes; no gradient flows into them.
    pad : torch.Tensor, optional
        ``(b, L)`` bool, True at padded positions (``gaps == 0``).

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
            block.out_proj.weight, block.out_proj.bias, gaps, pad, mm_dtype, block.d_state,
        )
