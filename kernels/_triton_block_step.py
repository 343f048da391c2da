r"""Triton kernels of one streaming step of a whole Mamba layer: three launches a layer.

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
views): a 4-layer step at batch 8 waited 3-4 ms on the hosts measured for
0.2 ms of GPU work. Here a layer is three launches, each a grid of programs
over ``BE``-channel (or ``BO``-feature) tiles and ``BB``-row blocks:

- :func:`in_kernel`: the norm (its ``1/rms`` applied after the products, as
  it is a factor of each row), the input product for its channels, the
  convolution step (window shifted in place) and SiLU; writes :math:`u`,
  :math:`z` and its tile's part of ``x_proj u`` (``(b, T, R + 2N)``,
  ``T = ceil(E / BE)`` tiles).
- :func:`ssm_kernel`: sums the ``T`` parts in a fixed order (deterministic,
  no atomics), then for its channels :math:`\Delta`, the state update and
  the gated output :math:`y`.
- :func:`out_kernel`: for its output features, ``W_out y`` added to the
  residual stream (in place after the first layer).

The stack's last norm is the RMS norm's own kernel (``_triton_norm``). The norm, ``x_proj`` and
``out_proj`` each need a whole row, which is what splits a layer in three.
Products are broadcasts summed in registers, in chunks of about ``2**14``
products a program: at these sizes (batch 1-64, ``d_model`` 256) every loop
iteration waits on its loads, so fewer, larger chunks were faster (H100,
2026-11-25, a 4-layer step's GPU time at batch 8: 16-wide chunks 268 us,
64-wide 105 us, 128-wide 76 us; ``tl.dot`` on 16-row blocks 116 us).

References
----------
.. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with Selective
   State Spaces", arXiv:2312.00752, 2023.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._triton_scan import _sigmoid, _softplus
from ._triton_step import conv_window_step

__all__ = ["in_kernel", "out_kernel", "ssm_kernel"]


@triton.jit
def _mm(a, w, acc):
    """``acc + a @ w`` ``(BB, K) @ (K, M)`` in float32, a broadcast product summed in registers.

    Any row count (``tl.dot`` needs 16 rows, and at these sizes its 16-row form was the
    slower: H100, 2026-11-25, a 4-layer step at batch 8 took 116 us with it against 76).
    """
    return acc + tl.sum(a[:, :, None] * w[None, :, :], axis=1)


@triton.jit
def in_kernel(
    h_ptr,                         # (b, d) the residual stream
    nw_ptr,                        # (d,) norm weight
    w_ptr, wb_ptr,                 # in_proj (2E, d), its bias (2E,)
    cw_ptr, cb_ptr,                # conv weight (E, K), bias (E,)
    cs_ptr,                        # (b, E, K-1) conv window, shifted in place
    xw_ptr,                        # x_proj (R + 2N, E)
    u_ptr, z_ptr,                  # (b, E) float32 outputs
    xp_ptr,                        # (b, T, J) float32: this tile's part of x_proj u, J = R + 2N
    gap_ptr,                       # (b,) time since the previous step (0: a padded step)
    b, d, E, T, J, eps_hi, eps_lo,
    K: tl.constexpr, KP: tl.constexpr, BB: tl.constexpr, BE: tl.constexpr, BD: tl.constexpr,
    JP: tl.constexpr, HAS_WB: tl.constexpr, HAS_CB: tl.constexpr, HAS_GAP: tl.constexpr,
):
    pid_e = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    e = pid_e * BE + tl.arange(0, BE)                                               # (BE,)
    em = e < E
    # One pass over the rows: the norm's 1/rms is a factor of each row, so the products
    # take h * w and are scaled once the sum of squares is complete.
    ss = tl.zeros([BB], dtype=tl.float32)
    x = tl.zeros([BB, BE], dtype=tl.float32)
    z = tl.zeros([BB, BE], dtype=tl.float32)
    for d0 in range(0, d, BD):
        dd = d0 + tl.arange(0, BD)                                                  # (BD,)
        dm = dd < d
        h = tl.load(h_ptr + rows.to(tl.int64)[:, None] * d + dd[None, :],
                    mask=rm[:, None] & dm[None, :], other=0.0).to(tl.float32)      # (BB, BD)
        ss += tl.sum(h * h, axis=1)
        hw = h * tl.load(nw_ptr + dd, mask=dm, other=0.0)[None, :]                 # (BB, BD)
        wm = dm[:, None] & em[None, :]                                              # (BD, BE)
        wx = tl.load(w_ptr + e.to(tl.int64)[None, :] * d + dd[:, None], mask=wm, other=0.0)        # (BD, BE)
        wz = tl.load(w_ptr + (E + e).to(tl.int64)[None, :] * d + dd[:, None], mask=wm, other=0.0)
        x = _mm(hw, wx, x)                                                     # (BB, BE)
        z = _mm(hw, wz, z)
    # eps as two float32 scalars, as the norm kernel takes it (a float64 eps to ~1e-16).
    r = 1.0 / tl.sqrt(ss / d + eps_hi + eps_lo)                                     # (BB,)
    x = x * r[:, None]
    z = z * r[:, None]
    if HAS_WB:
        x += tl.load(wb_ptr + e, mask=em, other=0.0)[None, :]
        z += tl.load(wb_ptr + E + e, mask=em, other=0.0)[None, :]
    if HAS_GAP:  # a padded step feeds the convolution a zero, as the parallel forward's padding
        x = tl.where((tl.load(gap_ptr + rows, mask=rm, other=1.0) == 0)[:, None], 0.0, x)

    # The convolution's step: window slots 0..K-2 from the state, slot K-1 the new x.
    k = tl.arange(0, KP)                                                            # (KP,)
    m2 = rm[:, None] & em[None, :]                                                  # (BB, BE)
    row = rows.to(tl.int64)[:, None] * E + e[None, :]                               # (BB, BE)
    cw = tl.load(cw_ptr + e[:, None] * K + k[None, :], mask=em[:, None] & (k < K)[None, :], other=0.0)
    u = conv_window_step(cs_ptr, row[:, :, None] * (K - 1) + k[None, None, :], k[None, None, :],
                         x[:, :, None], cw[None, :, :], m2[:, :, None], K)          # (BB, BE)
    if HAS_CB:
        u += tl.load(cb_ptr + e, mask=em, other=0.0)[None, :]
    u = tl.where(m2, u * _sigmoid(u, False), 0.0)
    tl.store(u_ptr + row, u, mask=m2)
    tl.store(z_ptr + row, z, mask=m2)
    # This tile's part of (delta, B, C) = x_proj u.
    j = tl.arange(0, JP)                                                            # (JP,)
    wj = tl.load(xw_ptr + j[None, :] * E + e[:, None], mask=em[:, None] & (j < J)[None, :], other=0.0)  # (BE, JP)
    xp = _mm(u, wj, tl.zeros([BB, JP], dtype=tl.float32))                       # (BB, JP)
    tl.store(xp_ptr + (rows.to(tl.int64) * T + pid_e)[:, None] * J + j[None, :], xp,
             mask=rm[:, None] & (j < J)[None, :])


@triton.jit
def _x_proj_part(xp_ptr, rows, rm, T, J, j0, n, cnt, TP: tl.constexpr):
    """Columns ``j0 .. j0 + cnt`` of ``x_proj u`` ``(BB, len(n))``: the T tiles' parts summed in order."""
    t = tl.arange(0, TP)                                                            # (TP,)
    off = (rows.to(tl.int64)[:, None, None] * T + t[None, :, None]) * J + j0 + n[None, None, :]
    m = rm[:, None, None] & (t < T)[None, :, None] & (n < cnt)[None, None, :]
    return tl.sum(tl.load(xp_ptr + off, mask=m, other=0.0), axis=1)                # (BB, len(n))


@triton.jit
def ssm_kernel(
    u_ptr, z_ptr, xp_ptr,          # (b, E), (b, E), (b, T, J) float32, from in_kernel
    dw_ptr, db_ptr,                # dt_proj weight (E, R), bias (E,)
    alog_ptr, D_ptr,               # (E, N), (E,)
    s_ptr,                         # (b, E, N) float32 state, updated in place
    y_ptr,                         # (b, E) float32 gated output
    gap_ptr,                       # (b,) time since the previous step, scales Δ
    b, E, R, N, T, J,
    RP: tl.constexpr, NP: tl.constexpr, TP: tl.constexpr, BB: tl.constexpr, BE: tl.constexpr,
    FAST: tl.constexpr, HAS_GAP: tl.constexpr,
):
    pid_e = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    rr = tl.arange(0, RP)                                                           # (RP,)
    n = tl.arange(0, NP)                                                            # (NP,)
    dl = _x_proj_part(xp_ptr, rows, rm, T, J, 0, rr, R, TP)                         # (BB, RP)
    Bm = _x_proj_part(xp_ptr, rows, rm, T, J, R, n, N, TP)                          # (BB, NP)
    Cm = _x_proj_part(xp_ptr, rows, rm, T, J, R + N, n, N, TP)                      # (BB, NP)
    e = pid_e * BE + tl.arange(0, BE)                                               # (BE,)
    em = e < E
    m2 = rm[:, None] & em[None, :]                                                  # (BB, BE)
    row = rows.to(tl.int64)[:, None] * E + e[None, :]                               # (BB, BE)
    wd = tl.load(dw_ptr + e[None, :] * R + rr[:, None], mask=(rr < R)[:, None] & em[None, :], other=0.0)
    dt = _mm(dl, wd, tl.zeros([BB, BE], dtype=tl.float32))                      # (BB, BE)
    dt = _softplus(dt + tl.load(db_ptr + e, mask=em, other=0.0)[None, :], FAST)
    if HAS_GAP:  # irregular time: Δ grows with the interval; 0 leaves the state as it is
        dt = dt * tl.load(gap_ptr + rows, mask=rm, other=0.0)[:, None]
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
    tl.store(y_ptr + row, y * z * _sigmoid(z, FAST), mask=m2)


@triton.jit
def out_kernel(
    y_ptr,                         # (b, E) float32, from ssm_kernel
    ow_ptr, ob_ptr,                # out_proj (d, E), its bias (d,)
    h_ptr, hout_ptr,               # (b, d) residual in and out (may be the same buffer)
    gap_ptr,                       # (b,) a 0 marks a padded step, whose output is 0
    b, d, E,
    BB: tl.constexpr, BO: tl.constexpr, BC: tl.constexpr, HAS_OB: tl.constexpr, HAS_GAP: tl.constexpr,
):
    o = tl.program_id(0) * BO + tl.arange(0, BO)                                    # (BO,)
    om = o < d
    rows = tl.program_id(1) * BB + tl.arange(0, BB)                                 # (BB,)
    rm = rows < b
    acc = tl.zeros([BB, BO], dtype=tl.float32)
    for c0 in range(0, E, BC):
        c = c0 + tl.arange(0, BC)                                                   # (BC,)
        cm = c < E
        y = tl.load(y_ptr + rows.to(tl.int64)[:, None] * E + c[None, :], mask=rm[:, None] & cm[None, :],
                    other=0.0)                                                      # (BB, BC)
        w = tl.load(ow_ptr + o.to(tl.int64)[None, :] * E + c[:, None], mask=cm[:, None] & om[None, :],
                    other=0.0)                                                      # (BC, BO)
        acc = _mm(y, w, acc)                                                 # (BB, BO)
    if HAS_OB:
        acc += tl.load(ob_ptr + o, mask=om, other=0.0)[None, :]
    if HAS_GAP:
        acc = tl.where((tl.load(gap_ptr + rows, mask=rm, other=1.0) == 0)[:, None], 0.0, acc)
    off = rows.to(tl.int64)[:, None] * d + o[None, :]                               # (BB, BO)
    m = rm[:, None] & om[None, :]
    # Each program reads its residual tile before writing it: in place is safe.
    h = tl.load(h_ptr + off, mask=m, other=0.0).to(tl.float32) + acc
    tl.store(hout_ptr + off, h.to(hout_ptr.dtype.element_ty), mask=m)
