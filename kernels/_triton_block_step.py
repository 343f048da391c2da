r"""Triton kernels of one streaming step of a whole Mamba layer: two launches a layer.

Per batch row, layer :math:`\ell` of a pre-norm Mamba stack advances its
residual stream :math:`h` by one position as

.. math::

    h &\leftarrow h + o_{\ell-1}, \qquad
    \hat h = \frac{h}{\sqrt{\tfrac1d \lVert h\rVert^2 + \epsilon}} \odot w_\ell, \qquad
    (x, z) = W_{in} \hat h\,(+\,b_{in}), \\
    u &= \operatorname{silu}\Big(\textstyle\sum_{k<K} c_k\, x_{t-K+1+k} + c_b\Big), \qquad
    (\delta, B, C) = W_x u, \qquad
    \Delta = \operatorname{softplus}(W_\Delta \delta + b_\Delta), \\
    s &\leftarrow e^{\Delta A} \odot s + \Delta\, u\, B, \qquad
    y = \big(C^\top s + D u\big) \odot \operatorname{silu}(z), \qquad
    o_\ell = W_{out}\, y\,(+\,b_{out}),

with :math:`A = -e^{A_{log}}`, the convolution's window of the last ``K - 1``
inputs and the state :math:`s` updated in place (Gu & Dao 2023, [1]_; the
same arithmetic as :meth:`sciamba.nn.MambaBlock.step` and the parallel
forward). The PyTorch form of one layer's step is a dozen launches (four
products, the norm, the convolution's and the scan's step kernels, casts and
views): on the hosts measured, a 4-layer step waited 3-4 ms on the host
for 0.2 ms of GPU work. Here a layer is two launches:

- :func:`_in_kernel` (programs over ``BE``-channel tiles of ``E`` and
  ``BB``-row blocks): the residual add, the norm, the input product for its
  channels (every program reads the whole normalized row: ``d`` numbers), the
  convolution step (window shifted in place) and SiLU; writes :math:`u`,
  :math:`z`. The tile-0 programs also write the new residual rows.
- :func:`_out_kernel` (the same grid): the ``x_proj`` product over all
  ``E`` channels of its rows (each program recomputes the ``R + 2N`` numbers
  it needs instead of waiting on a third launch), then, for its channels,
  :math:`\Delta`, the state update, the gated output, and its tile's part of
  the output product, written as one of ``T = ceil(E / BE)`` partial sums.

The next layer's :func:`_in_kernel` (or :func:`_final_kernel`, the stack's
last norm) adds the ``T`` partials in a fixed order: no atomics, so a step
is deterministic. Products are sums of elementwise products in float32 over
register tiles, fine at the small widths this step is meant for (at batch 8
or 64 a cuBLAS product of these sizes is itself a launch-bound kernel).

References
----------
.. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with Selective
   State Spaces", arXiv:2312.00752, 2023.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._triton_scan import _sigmoid, _softplus

__all__ = ["final_kernel", "in_kernel", "out_kernel"]


@triton.jit
def _residual_tile(h_ptr, p_ptr, ob_ptr, rows, rm, dd, dm, b, d, T,
                   HAS_P: tl.constexpr, HAS_OB: tl.constexpr):
    """``h + sum_t P[t] (+ b_out)`` on a ``(BB, BD)`` tile: the previous layer's output added."""
    m = rm[:, None] & dm[None, :]                                                   # (BB, BD)
    off = rows.to(tl.int64)[:, None] * d + dd[None, :]                              # (BB, BD)
    h = tl.load(h_ptr + off, mask=m, other=0.0).to(tl.float32)                      # (BB, BD)
    if HAS_P:
        o = tl.zeros_like(h)
        for t in range(T):  # the partials in a fixed order: deterministic
            o += tl.load(p_ptr + t * b * d + off, mask=m, other=0.0)
        if HAS_OB:
            o += tl.load(ob_ptr + dd, mask=dm, other=0.0)[None, :]
        h += o
    return h, off, m


@triton.jit
def _rstd(h_ptr, p_ptr, ob_ptr, rows, rm, b, d, T, eps_hi, eps_lo,
          HAS_P: tl.constexpr, HAS_OB: tl.constexpr, BB: tl.constexpr, BD: tl.constexpr):
    """``1 / sqrt(mean(h^2) + eps)`` of the residual rows ``(BB,)``, in ``BD``-column passes."""
    ss = tl.zeros([BB], dtype=tl.float32)
    for d0 in range(0, d, BD):
        dd = d0 + tl.arange(0, BD)
        h, _, _ = _residual_tile(h_ptr, p_ptr, ob_ptr, rows, rm, dd, dd < d, b, d, T, HAS_P, HAS_OB)
        ss += tl.sum(h * h, axis=1)
    # eps as two float32 scalars, as the norm kernel takes it (a float64 eps to ~1e-16).
    return 1.0 / tl.sqrt(ss / d + eps_hi + eps_lo)                                  # (BB,)


@triton.jit
def in_kernel(
    h_ptr, p_ptr, ob_ptr,          # residual (b, d); previous output's partials (T, b, d), bias (d,)
    hout_ptr,                      # (b, d) the new residual, written by the tile-0 programs
    nw_ptr,                        # (d,) norm weight
    w_ptr, wb_ptr,                 # in_proj (2E, d), its bias (2E,)
    cw_ptr, cb_ptr,                # conv weight (E, K), bias (E,)
    cs_ptr,                        # (b, E, K-1) conv window, shifted in place
    u_ptr, z_ptr,                  # (b, E) float32 outputs
    b, d, E, T, eps_hi, eps_lo,
    K: tl.constexpr, KP: tl.constexpr, BB: tl.constexpr, BE: tl.constexpr, BD: tl.constexpr,
    HAS_P: tl.constexpr, HAS_OB: tl.constexpr, HAS_WB: tl.constexpr, HAS_CB: tl.constexpr,
):
    pid_e = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    e = pid_e * BE + tl.arange(0, BE)                                               # (BE,)
    em = e < E
    r = _rstd(h_ptr, p_ptr, ob_ptr, rows, rm, b, d, T, eps_hi, eps_lo, HAS_P, HAS_OB, BB, BD)
    x = tl.zeros([BB, BE], dtype=tl.float32)
    z = tl.zeros([BB, BE], dtype=tl.float32)
    for d0 in range(0, d, BD):
        dd = d0 + tl.arange(0, BD)                                                  # (BD,)
        dm = dd < d
        h, off, m = _residual_tile(h_ptr, p_ptr, ob_ptr, rows, rm, dd, dm, b, d, T, HAS_P, HAS_OB)
        if HAS_P:  # without a previous output the residual is the input itself
            if pid_e == 0:
                tl.store(hout_ptr + off, h.to(hout_ptr.dtype.element_ty), mask=m)
        hn = h * r[:, None] * tl.load(nw_ptr + dd, mask=dm, other=0.0)[None, :]    # (BB, BD)
        wm = em[:, None] & dm[None, :]
        wx = tl.load(w_ptr + e.to(tl.int64)[:, None] * d + dd[None, :], mask=wm, other=0.0)        # (BE, BD)
        wz = tl.load(w_ptr + (E + e).to(tl.int64)[:, None] * d + dd[None, :], mask=wm, other=0.0)
        x += tl.sum(hn[:, None, :] * wx[None, :, :], axis=2)                        # (BB, BE)
        z += tl.sum(hn[:, None, :] * wz[None, :, :], axis=2)
    if HAS_WB:
        x += tl.load(wb_ptr + e, mask=em, other=0.0)[None, :]
        z += tl.load(wb_ptr + E + e, mask=em, other=0.0)[None, :]

    # The convolution's step: window slots 0..K-2 from the state, slot K-1 the new x.
    k = tl.arange(0, KP)                                                            # (KP,)
    m2 = rm[:, None] & em[None, :]                                                  # (BB, BE)
    row = rows.to(tl.int64)[:, None] * E + e[None, :]                               # (BB, BE)
    s_off = row[:, :, None] * (K - 1) + k[None, None, :]                            # (BB, BE, KP)
    old = tl.load(cs_ptr + s_off, mask=m2[:, :, None] & (k < K - 1)[None, None, :], other=0.0)
    win = tl.where(k[None, None, :] == K - 1, x[:, :, None], old)                  # (BB, BE, KP)
    cw = tl.load(cw_ptr + e[:, None] * K + k[None, :], mask=em[:, None] & (k < K)[None, :], other=0.0)
    u = tl.sum(win * cw[None, :, :], axis=2)                                        # (BB, BE)
    if HAS_CB:
        u += tl.load(cb_ptr + e, mask=em, other=0.0)[None, :]
    u = u * _sigmoid(u, False)
    tl.store(u_ptr + row, u, mask=m2)
    tl.store(z_ptr + row, z, mask=m2)
    # Shift the window: slot j takes slot j + 1, the last x's. Every thread has read its
    # slots above; the barrier keeps any of them from being overwritten before that.
    nxt = tl.load(cs_ptr + s_off + 1, mask=m2[:, :, None] & (k < K - 2)[None, None, :], other=0.0)
    tl.debug_barrier()
    new = tl.where(k[None, None, :] == K - 2, x[:, :, None], nxt)
    tl.store(cs_ptr + s_off, new, mask=m2[:, :, None] & (k < K - 1)[None, None, :])


@triton.jit
def out_kernel(
    u_ptr, z_ptr,                  # (b, E) float32, from in_kernel
    xw_ptr,                        # x_proj (R + 2N, E)
    dw_ptr, db_ptr,                # dt_proj weight (E, R), bias (E,)
    alog_ptr, D_ptr,               # (E, N), (E,)
    s_ptr,                         # (b, E, N) float32 state, updated in place
    ow_ptr,                        # out_proj (d, E)
    p_ptr,                         # (T, b, d) float32: this tile's part of out_proj y
    b, d, E, R, N,
    RP: tl.constexpr, NP: tl.constexpr, BB: tl.constexpr, BE: tl.constexpr,
    BC: tl.constexpr, BO: tl.constexpr, FAST: tl.constexpr,
):
    pid_e = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    rr = tl.arange(0, RP)                                                           # (RP,)
    n = tl.arange(0, NP)                                                            # (NP,)
    # (delta, B, C) = x_proj(u) over all E channels of these rows, BC channels at a time.
    dl = tl.zeros([BB, RP], dtype=tl.float32)
    Bm = tl.zeros([BB, NP], dtype=tl.float32)
    Cm = tl.zeros([BB, NP], dtype=tl.float32)
    for c0 in range(0, E, BC):
        c = c0 + tl.arange(0, BC)                                                   # (BC,)
        cm = c < E
        uc = tl.load(u_ptr + rows.to(tl.int64)[:, None] * E + c[None, :],
                     mask=rm[:, None] & cm[None, :], other=0.0)                     # (BB, BC)
        wr = tl.load(xw_ptr + rr[:, None] * E + c[None, :], mask=(rr < R)[:, None] & cm[None, :], other=0.0)
        wB = tl.load(xw_ptr + (R + n)[:, None] * E + c[None, :], mask=(n < N)[:, None] & cm[None, :], other=0.0)
        wC = tl.load(xw_ptr + (R + N + n)[:, None] * E + c[None, :], mask=(n < N)[:, None] & cm[None, :],
                     other=0.0)
        dl += tl.sum(uc[:, None, :] * wr[None, :, :], axis=2)                       # (BB, RP)
        Bm += tl.sum(uc[:, None, :] * wB[None, :, :], axis=2)                       # (BB, NP)
        Cm += tl.sum(uc[:, None, :] * wC[None, :, :], axis=2)

    e = pid_e * BE + tl.arange(0, BE)                                               # (BE,)
    em = e < E
    m2 = rm[:, None] & em[None, :]                                                  # (BB, BE)
    row = rows.to(tl.int64)[:, None] * E + e[None, :]                               # (BB, BE)
    wd = tl.load(dw_ptr + e[:, None] * R + rr[None, :], mask=em[:, None] & (rr < R)[None, :], other=0.0)
    dt = tl.sum(dl[:, None, :] * wd[None, :, :], axis=2)                            # (BB, BE)
    dt = _softplus(dt + tl.load(db_ptr + e, mask=em, other=0.0)[None, :], FAST)
    mn = em[:, None] & (n < N)[None, :]                                             # (BE, NP)
    A = -tl.exp(tl.load(alog_ptr + e[:, None] * N + n[None, :], mask=mn, other=0.0))   # (BE, NP)
    u = tl.load(u_ptr + row, mask=m2, other=0.0)                                    # (BB, BE)
    s_off = row[:, :, None] * N + n[None, None, :]                                  # (BB, BE, NP)
    m3 = rm[:, None, None] & mn[None, :, :]
    s = tl.load(s_ptr + s_off, mask=m3, other=0.0)
    s = tl.exp(dt[:, :, None] * A[None, :, :]) * s + (dt * u)[:, :, None] * Bm[:, None, :]
    tl.store(s_ptr + s_off, s, mask=m3)
    y = tl.sum(s * Cm[:, None, :], axis=2) + tl.load(D_ptr + e, mask=em, other=0.0)[None, :] * u
    z = tl.load(z_ptr + row, mask=m2, other=0.0)
    y = tl.where(m2, y * z * _sigmoid(z, FAST), 0.0)                                # (BB, BE)

    # This tile's part of out_proj y, BO output features at a time.
    for o0 in range(0, d, BO):
        o = o0 + tl.arange(0, BO)                                                   # (BO,)
        om = o < d
        wo = tl.load(ow_ptr + o.to(tl.int64)[:, None] * E + e[None, :], mask=om[:, None] & em[None, :], other=0.0)
        part = tl.sum(y[:, None, :] * wo[None, :, :], axis=2)                       # (BB, BO)
        tl.store(p_ptr + (pid_e * b + rows.to(tl.int64))[:, None] * d + o[None, :], part,
                 mask=rm[:, None] & om[None, :])


@triton.jit
def final_kernel(
    h_ptr, p_ptr, ob_ptr,          # as in_kernel
    nw_ptr, y_ptr,                 # the last norm's weight (d,), its output (b, d)
    b, d, T, eps_hi, eps_lo,
    BB: tl.constexpr, BD: tl.constexpr, HAS_OB: tl.constexpr,
):
    rows = tl.program_id(0) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    r = _rstd(h_ptr, p_ptr, ob_ptr, rows, rm, b, d, T, eps_hi, eps_lo, True, HAS_OB, BB, BD)
    for d0 in range(0, d, BD):
        dd = d0 + tl.arange(0, BD)
        dm = dd < d
        h, off, m = _residual_tile(h_ptr, p_ptr, ob_ptr, rows, rm, dd, dm, b, d, T, True, HAS_OB)
        y = h * r[:, None] * tl.load(nw_ptr + dd, mask=dm, other=0.0)[None, :]
        tl.store(y_ptr + off, y.to(y_ptr.dtype.element_ty), mask=m)
