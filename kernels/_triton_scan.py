r"""Triton selective-scan kernels, forward and backward (``backend="triton"``).

The scan is

.. math::

    h_t = e^{\Delta_t A} \odot h_{t-1} + \Delta_t u_t B_t, \qquad
    y_t = C_t^\top h_t + D u_t,

optionally gated by :math:`\operatorname{silu}(z_t)`. The backward pass uses
the adjoint recurrence, run backwards in time,

.. math::

    q_t = e^{\Delta_{t+1} A} \odot q_{t+1} + C_t\, \bar y_t, \qquad
    \bar y_t = \partial\mathcal L / \partial y_t,

and :math:`e^{\Delta_t A} h_{t-1} = h_t - \Delta_t u_t B_t`, so no shifted
state is needed for the decay gradients. The decay that carries :math:`q`
back past step :math:`t` is that of step :math:`t+1`; the backward scans the
unshifted decays :math:`e^{\Delta_t A}` with a combine that applies each one
an element late (:func:`_shifted_first_order`), so one set of exponentials
serves both the recomputed forward states and the adjoint, and the carry
between chunks is :math:`w = e^{\Delta_s A} q_s` at a chunk's first step
(which is also :math:`\partial\mathcal L/\partial h_0` at the end).

Layout of the work
------------------
One program (one warp by default) owns a batch row and a block of ``BD``
channels (and, when there are few channels, a *range* of time). It keeps the
``(N, BD)`` state in registers and walks time in chunks of ``T`` steps: a
chunk is a ``(T, N, BD)`` tile whose ``T`` axis is the slowest, so Triton's
default layout keeps it inside each thread and puts channels (then states) on
the lanes. The scan over ``T`` is then a sequential in-register
:func:`triton.language.associative_scan` of ``(a, b)`` pairs, with the carried
state folded into the first ``b``; chunk end states are read off that scan.
Loads and stores of ``(T, BD)`` tiles run along ``L``, the contiguous axis,
and Triton pipelines them under the arithmetic. For half-precision outputs
the forward's sum over states is split between the two lanes that hold a
channel's states, each keeping half of the steps (:func:`_state_sum`), so y
leaves without a further exchange. u, delta, z, the output and
their gradients share one pair of batch and channel strides (contiguous
``(b, dim, L)`` from the public API, or views of the Mamba block's
channel-major ``(dim, b*L)`` buffers, read in place); a time-varying B or C
and its gradient take their own batch, group and state strides. The backward's reverse
recurrence is a forward scan of time-flipped tiles (the compiled
``reverse=True`` scan moved every element across lanes); the gradients summed
over programs (those of A, D, delta_bias, and the channel sums of B and C)
are added with atomics into zeroed buffers in the compute dtype, so they are
not bitwise reproducible from run to run (the backward alerts under
``torch.use_deterministic_algorithms``).
``exp2`` with ``log2 e`` folded into ``A`` runs on the MUFU; on a GPU softplus
is a polynomial instead of a logarithm and the divisions are approximate, and
for half-precision inputs the exponentials of softplus and the gate and the
reciprocals are bare MUFU instructions too (:func:`_fast_math` levels; each
approximation is within a few units in the last place of float32, and a
compiled test holds the fast kernels to the exact ones).

Memory
------
The forward pass, when a gradient will be needed, saves the state at every
``SEG``-th step (``(batch, ceil(L/SEG), dim, N)``). The backward pass
recomputes each segment's chunk states from that checkpoint into a small
per-program scratch (``SEG/T`` states; the first is the checkpoint itself),
then runs the chunks backwards. A checkpoint at every backward chunk
(``SEG = T``) would skip that pass, but writing and reading ``N`` floats per
``T`` steps cost more than it saved (H100: bf16 8x1536x2048 forward+backward
1.92 ms at ``SEG = 128``, 2.09 ms at ``SEG = 16``). No
tensor of size ``batch·dim·L·N`` is ever formed.

Long sequences with few channels are split into ``R`` time ranges that run in
parallel: a first pass computes each range's end state from zero (and the sum
of its step sizes, whose product of decays is ``exp(A Σ Δ)``), a small kernel
chains them into the true range-start states, and the main pass runs all
ranges at once. The backward pass does the same for the adjoint carry ``w``;
with few ranges (up to ``_CHAIN_IN_KERNEL``) each program of its main pass
chains the later ranges' carries itself, which saves a launch.

This module is private: :func:`sciamba.kernels.selective_scan` validates the
inputs and calls :func:`selective_scan_triton`.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._backends import _interpret_enabled, check_buffer, grad_needed, on_device, refuse_create_graph
from ._launch import cdiv, launch, next_pow2

__all__ = ["selective_scan_triton"]


# --------------------------------------------------------------------------- #
# Device helpers
# --------------------------------------------------------------------------- #
@triton.jit
def _first_order(a1, b1, a2, b2):
    # Composition of x -> a1 x + b1 then x -> a2 x + b2 (left = earlier in the
    # scan direction): associative, so the scan yields the cumulative maps.
    # An explicit FMA: with b2 itself a product (Δ u B), contraction fused that product
    # instead, leaving b1 * a2 as a separate multiply on the recurrence's critical path
    # (two dependent operations a step instead of one).
    return a1 * a2, tl.fma(b1, a2, b2)


@triton.jit
def _shifted_first_order(p1, s1, f1, p2, s2, f2):
    # Segments of x_j = f_{j-1} x_{j-1} + s_j: each multiplies the value coming
    # in by the decay of the element *before* it. A segment is (p, s, f): its
    # last x is p·f_in·x_in + s, and f is its last element's decay. Composing
    # (function composition, hence associative): the right's input decay is
    # the left's f. Sequentially in a thread (p2 = 1) the value chain is one FMA
    # per element, plus the product p carried along.
    g = p2 * f1
    return g * p1, tl.fma(g, s1, s2), f2  # an explicit FMA, as in _first_order


@triton.jit
def _adjoint_from(f, c, w, T: tl.constexpr):
    """``x_j = f_{j-1} x_{j-1} + c_j`` over a (T, NP, BD) tile, ``f_{-1} x_{-1} = w``.

    The adjoint ``q_t = e^{Δ_{t+1} A} q_{t+1} + C_t ȳ_t`` run on time-flipped
    tiles: the decay that carries ``q`` back past a step is that of the step
    *after* it, so the flipped decays enter one element late. Scanning them
    unshifted with :func:`_shifted_first_order` reuses the forward's decays
    ``e^{Δ_t A}`` instead of computing a second, shifted set.
    """
    first = tl.arange(0, T)[:, None, None] == 0
    _, xs, _ = tl.associative_scan((tl.full(c.shape, 1.0, c.dtype), tl.where(first, c + w[None, :, :], c),
                                    f), 0, _shifted_first_order)
    return xs


@triton.jit
def _scan_from(a, b, h, T: tl.constexpr):
    """States of a chunk, (T, NP, BD), from ``h`` (NP, BD), the state before it.

    ``a·h`` is folded into the first ``b``, so the scan's second output is the
    state itself. Chunk end states come from this scan too, never from
    ``tl.reduce``: compiled, that did not keep the left-to-right order the
    non-commutative combine needs (seen on an H100 with Triton 3.6 whenever a
    channel block was partly masked).
    """
    first = tl.arange(0, T)[:, None, None] == 0
    _, hs = tl.associative_scan((a, tl.where(first, b + a * h[None, :, :], b)), 0,
                                _first_order)
    return hs


@triton.jit
def _load_A(ptr, off, mask, A_LOG: tl.constexpr, cdt):
    """A at ``off``; with ``A_LOG`` the pointer holds log(-A) (the Mamba block's ``A_log``),
    so the exponential is taken here rather than by a separate launch."""
    a = tl.load(ptr + off, mask=mask, other=0.0).to(cdt)
    if A_LOG:
        a = tl.where(mask, -tl.exp(a), 0.0)
    return a


@triton.jit
def _log2e_times(A, cdt):
    """``A·log2(e)``, so that ``exp(Δ A) = exp2(Δ A log2 e)`` (exact in float64 too)."""
    return A * tl.full(A.shape, 1.4426950408889634, cdt)


@triton.jit
def _carry(A2, s, x, e):
    """One range's affine map ``x -> e^{A Σ Δ} x + e`` (``A2 = A log2 e``, ``s = Σ Δ``), which
    chains the ranges' states forward and their adjoint carries backward."""
    return tl.exp2(A2 * s) * x + e


@triton.jit
def _halves(x, T: tl.constexpr, BD: tl.constexpr, V: tl.constexpr):
    """A ``(T, BD)`` tile as ``(BD, 2, Q, V)``, ``Q = T / 2V``, step ``t = 2V q + V h + j``.

    The forward's half-precision epilogue works on tiles of this shape: stored
    through it, each thread writes ``V`` consecutive steps of a channel (16
    bytes) and the half ``h`` sits on the lane bit that splits the states
    (see :func:`_state_sum`), so the output needs no exchange between lanes.
    """
    return tl.permute(tl.reshape(x, (T // (2 * V), 2, V, BD)), (3, 1, 0, 2))


@triton.jit
def _state_sum(x, T: tl.constexpr, NP: tl.constexpr, BD: tl.constexpr, V: tl.constexpr):
    """``Σ_n x[t, n, d]`` of a ``(T, NP, BD)`` tile, as :func:`_halves` lays out ``(T, BD)`` tiles.

    A warp keeps the states of a channel on two lanes. ``tl.sum`` over them
    would add within each thread, then exchange all ``T`` partial sums so both
    lanes hold every step's total, and the store's layout then needed another
    exchange. Here each thread first sums its own states (``p``), and one
    exchange of half of ``p`` leaves each lane of the pair the totals of its
    half of the steps (a reduce-scatter): Triton's ``split`` of the pair axis
    puts it in registers. sass_census (Triton 3.6, bf16 8x1536x2048 forward
    loop): 1234 -> 1189 instructions a chunk, 24 of them shuffles.
    """
    if NP == 1:
        return _halves(tl.sum(x, axis=1), T, BD, V)
    else:
        p = tl.sum(tl.reshape(x, (T, NP // 2, 2, BD)), axis=1)             # (T, 2, BD)
        p = tl.permute(tl.reshape(p, (T // (2 * V), 2, V, 2, BD)), (4, 1, 0, 2, 3))  # (BD 2 Q V 2)
        y0, y1 = tl.split(p)                                                # (BD, 2, Q, V) each
        return y0 + y1


@triton.jit
def _last(x, T: tl.constexpr):
    """``x[T - 1]`` of a (T, ...) tile (an in-register select and sum)."""
    return tl.sum(tl.where(tl.arange(0, T)[:, None, None] == T - 1, x, 0.0), axis=0)


@triton.jit
def _ex2(x):
    """``2**x`` as a bare MUFU.EX2 (flushing subnormal results: see :func:`_exp`)."""
    return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                     is_pure=True, pack=1)


@triton.jit
def _exp(x, FAST: tl.constexpr):
    if FAST == 2:
        # ``exp2(x log2 e)`` as a bare MUFU.EX2. Triton's exp keeps subnormal
        # results (``ex2.approx.f32``), which ptxas wraps in a compare and two
        # predicated scalings: three instructions more per call. Flushing only
        # changes results below 2**-126 (tl.exp2, used for the decays, already
        # flushes). Level 2 of FAST: see _fast_math for where it pays.
        return _ex2(_log2e_times(x, tl.float32))
    else:
        return tl.exp(x)


@triton.jit
def _div(a, b, FAST: tl.constexpr):
    if FAST == 2:
        # a times a bare MUFU.RCP: div.full.f32 guards huge and subnormal divisors with two
        # compares, a select and rescalings (about six instructions a division). The
        # divisors here (1 + e^x, 2 + e) are never subnormal; a huge or infinite one
        # only arises in the sigmoid (numerator 1), where the quotient flushes to 0
        # exactly where the true one is subnormal.
        return a * tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [b],
                                             dtype=tl.float32, is_pure=True, pack=1)
    elif FAST:
        return tl.fdiv(a, b)  # approximate float32 division (div.full.f32)
    else:
        return a / b


@triton.jit
def _pin(x, PIN: tl.constexpr):
    """``x``, a ``(T, BD)`` tile; with ``PIN``, kept in its own layout by a sum over a new unit axis.

    The per-(t, channel) math (softplus, the products with u) runs on
    ``(T, BD)`` tiles, a few elements a thread; the state tile needs those
    values in a layout that repeats each one on the lanes of its states.
    Triton 3.6's layout pass (the H100 machines') moves that conversion up to
    the shared-memory load, so all of the math runs in the repeated layout,
    four times over: 956 instructions and 120 MUFU a chunk of the bf16
    forward's loop (sass_census with Triton 3.6) instead of 701 and 84. The
    pass cannot carry a layout back through a reduction (an opaque ``asm``
    with a side effect did not stop it: it was duplicated), so the
    conversion stays after this one, which adds nothing. Forward on an H100
    (2026-11-24, same process, us): bf16 8x1536x2048 260 -> 255, 8x1536x8192
    1010 -> 989, 8x512x4096 233 -> 208, fp32 8x1536x2048 291 -> 281; the
    backward's pins gain 4-6% for bf16 and cost 2.6% for fp32 inputs, so
    the host sets ``PIN`` there for half precision only (:func:`_pinned`).
    """
    if PIN:
        return tl.sum(x[:, :, None], axis=2)
    else:
        return x


@triton.jit
def _softplus(x, FAST: tl.constexpr):
    if FAST:
        # One branch for every x: softplus(x) = max(x, 0) + log1p(w), w = e^{-|x|} in
        # (0, 1], and log1p(w) = w P(w) with P the degree-9 Chebyshev interpolant of
        # log1p(w)/w on [0, 1] (at its 10 Chebyshev nodes, numpy's chebfit, in powers of w;
        # relative error 5e-9 in float64, 1.8e-7 by this float32 Horner): no logarithm
        # and no division, one MUFU an element. MUFU.LG2's error
        # near 1 is absolute (about 2**-22.6), which made log2(1 + e^x) 0.2% off at
        # x = -10 and 60% at x = -16.6. Above mamba_ssm's threshold (x > 20) the sum rounds
        # to x itself, as its softplus returns; a NaN stays NaN through w. H100, 2026-11-24,
        # alternating processes, forward us: the two-branch form it replaced (a series below
        # e^x = 1/4, MUFU.LG2 above) -> the atanh series of w / (2 + w) (a reciprocal) -> this:
        # bf16 8x1536x2048 241 -> 234 -> 235, 8x1536x8192 933 -> 902 -> 908, fp32 8x1536x2048
        # 261 -> 256 -> 249; forward+backward bf16 -2% then -0.5%, fp32 -0.5% then -0.9%.
        if FAST == 2:
            w = _ex2(tl.abs(x) * -1.4426950408889634)  # one FMUL: -|x| log2 e
            # Half-precision inputs: the degree-7 interpolant (8 nodes; 2.2e-7 in float64,
            # 2.8e-7 by this Horner; the exp2's rounding of x log2 e, up to 4e-6 at x = -85,
            # dominates either degree), two FMAs fewer an element. H100, 2026-11-25,
            # alternating processes, forward us: bf16 8x1536x2048 224.5-224.9 -> 222.3-223.3,
            # 8x1536x8192 873 -> 863; with float32 inputs the same change was slower
            # (8x1536x2048 250 -> 253.5), so level 1 keeps degree 9.
            p = w * -0.008371152549078937 + 0.04349389981460339
            p = p * w - 0.10685002863738338
            p = p * w + 0.17687476700488722
            p = p * w - 0.24474774178533362
            p = p * w + 0.33271928383407473
            p = p * w - 0.4999717452300746
            p = p * w + 0.9999997807585049
        else:
            w = tl.exp(-tl.abs(x))
            p = w * -0.003176057008524613 + 0.01954252721422867
            p = p * w - 0.05637361273760199
            p = p * w + 0.10543623785499762
            p = p * w - 0.15269667068116388
            p = p * w + 0.1966327425486589
            p = p * w - 0.24951616262368576
            p = p * w + 0.33329710498860476
            p = p * w - 0.49999892648060384
            p = p * w + 0.9999999946562914
        return tl.maximum(x, 0.0) + w * p
    else:
        # log1p(exp(x)) for x <= 20 and x above (mamba_ssm's threshold), with Goldberg's
        # correction and the exact log: accurate where exp(x) << eps too.
        e = _exp(tl.minimum(x, 20.0), FAST)
        one_p = 1.0 + e
        den = one_p - 1.0
        lp = tl.where(den == 0.0, e, tl.log(one_p) * (e / tl.where(den == 0.0, 1.0, den)))
        return tl.where(x <= 20.0, lp, x)


@triton.jit
def _softplus_grad(x, FAST: tl.constexpr):
    # d softplus / dx = sigmoid(x) below the threshold, 1 above.
    e = _exp(tl.minimum(x, 20.0), FAST)
    return tl.where(x <= 20.0, _div(e, 1.0 + e, FAST), 1.0)


@triton.jit
def _sigmoid(x, FAST: tl.constexpr):
    return _div(1.0, 1.0 + _exp(-x, FAST), FAST)


@triton.jit
def _step_sizes(delta_ptr, bias, off2, m2, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, cdt,
                FAST: tl.constexpr):
    """Δ tile ``(T, BD)`` loaded from ``delta``; see :func:`_dt_from_raw`."""
    return _dt_from_raw(tl.load(delta_ptr + off2, mask=m2, other=0.0), bias, m2, HAS_BIAS,
                        SOFTPLUS, cdt, FAST)


@triton.jit
def _load_bc(ptr, base, t, tm, n, nm, d, dm, cpg, s_b, s_g, s_n, VAR: tl.constexpr,
             ONE_GROUP: tl.constexpr, pid_b, d0, cdt):
    """B or C as a tile broadcastable to ``(T, NP, BD)``; ``s_*``: its batch, group, state strides."""
    if VAR:
        if ONE_GROUP:
            g = d0 // cpg
            row = pid_b.to(tl.int64) * s_b + g * s_g
            v = tl.load(ptr + row + n[None, :].to(tl.int64) * s_n + t[:, None],
                        mask=tm[:, None] & nm[None, :], other=0.0).to(cdt)  # (T, NP)
            return v[:, :, None]
        else:
            g = d // cpg  # (BD,)
            row = pid_b.to(tl.int64) * s_b + g.to(tl.int64) * s_g  # (BD,)
            v = tl.load(ptr + row[None, None, :] + n[None, :, None].to(tl.int64) * s_n + t[:, None, None],
                        mask=tm[:, None, None] & nm[None, :, None] & dm[None, None, :],
                        other=0.0).to(cdt)  # (T, NP, BD)
            return v
    else:
        return base[None, :, :]  # (1, NP, BD)


@triton.jit
def _per_channel(bias_ptr, D_ptr, B_ptr, C_ptr, d, dm, nd_off, ndm, like,
                 HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, VAR_B: tl.constexpr,
                 VAR_C: tl.constexpr, cdt):
    """Per-channel constants: Δ bias and D (BD,), time-invariant B and C (NP, BD)."""
    zero_d = tl.sum(tl.zeros_like(like), axis=0)  # (BD,) zeros in the right layout
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=dm, other=0.0).to(cdt)
    else:
        bias = zero_d
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=dm, other=0.0).to(cdt)
    else:
        Dv = zero_d
    if VAR_B:
        Bc = like
    else:
        Bc = tl.load(B_ptr + nd_off, mask=ndm, other=0.0).to(cdt)
    if VAR_C:
        Cc = like
    else:
        Cc = tl.load(C_ptr + nd_off, mask=ndm, other=0.0).to(cdt)
    return bias, Dv, Bc, Cc


@triton.jit
def _dt_from_raw(x_raw, bias, m2, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, cdt,
                 FAST: tl.constexpr, MASK: tl.constexpr = True):
    """Δ from loaded raw delta; 0 where masked (a step with Δ = 0 is the identity).

    ``MASK=False`` when every step of the tile is in range: a masked channel's
    Δ only ever reaches its own (unstored) lanes.
    """
    x = x_raw.to(cdt)
    if HAS_BIAS:
        x = x + bias[None, :]
    if SOFTPLUS:
        dt = _softplus(x, FAST)
    else:
        dt = x
    if MASK:
        dt = tl.where(m2, dt, 0.0)
    return dt, x


@triton.jit
def _load_chunk(u_ptr, delta_ptr, z_ptr, B_ptr, C_ptr, Bc, Cc, row_off, t, dm, n, nm, d,
                cpgB, sBb, sBg, sBn, cpgC, sCb, sCg, sCn, L, LOAD_Z: tl.constexpr,
                LOAD_C: tl.constexpr, VAR_B: tl.constexpr, VAR_C: tl.constexpr,
                ONE_GROUP_B: tl.constexpr, ONE_GROUP_C: tl.constexpr, pid_b, d0,
                EVEN: tl.constexpr = False):
    """Raw tiles of one chunk: u, delta, z (T, BD) and B, C broadcastable to (T, NP, BD).

    ``EVEN``: the chunk lies inside ``L``, so only the channel mask applies.
    """
    if EVEN:
        tm = tl.full(t.shape, True, tl.int1)
    else:
        tm = t < L
    m2 = tm[:, None] & dm[None, :]
    off2 = row_off + t[:, None]
    ur = tl.load(u_ptr + off2, mask=m2, other=0.0)
    dr = tl.load(delta_ptr + off2, mask=m2, other=0.0)
    if LOAD_Z:
        zr = tl.load(z_ptr + off2, mask=m2, other=0.0)
    else:
        zr = ur
    B3 = _load_bc(B_ptr, Bc, t, tm, n, nm, d, dm, cpgB, sBb, sBg, sBn, VAR_B, ONE_GROUP_B, pid_b,
                  d0, Bc.dtype)
    if LOAD_C:
        C3 = _load_bc(C_ptr, Cc, t, tm, n, nm, d, dm, cpgC, sCb, sCg, sCn, VAR_C, ONE_GROUP_C,
                      pid_b, d0, Cc.dtype)
    else:
        C3 = B3
    return ur, dr, zr, B3, C3


# --------------------------------------------------------------------------- #
# Forward
# --------------------------------------------------------------------------- #
@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    hin_ptr,   # (b, R, dim, N) range-start states (R = 1: the initial state)
    y_ptr,     # (b, dim, L), strided like u
    hout_ptr,  # STATE_ONLY: (b, R, dim, N) range-end states from zero; else (b, dim, N) last state
    ckpt_ptr,  # (b, nseg, dim, N) state at the start of every segment
    sdt_ptr,   # STATE_ONLY: (b, R, dim) sum of Δ over the range
    dim, L, cpgB, sBb, sBg, sBn, cpgC, sCb, sCg, sCn, nseg, spr, R,
    s_b, s_d,  # batch and channel strides of every (b, dim, L) tensor (time stride 1)
    SEG: tl.constexpr, T: tl.constexpr, N: tl.constexpr, NP: tl.constexpr, BD: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_HIN: tl.constexpr, VAR_B: tl.constexpr, VAR_C: tl.constexpr,
    ONE_GROUP_B: tl.constexpr, ONE_GROUP_C: tl.constexpr,
    STATE_ONLY: tl.constexpr, SAVE_CKPT: tl.constexpr, WRITE_LAST: tl.constexpr,
    STAGES: tl.constexpr, FAST: tl.constexpr, A_LOG: tl.constexpr, PIN: tl.constexpr,
    EVEN: tl.constexpr,  # T divides L: no time masks (only with V > 0, see _split_store)
    V: tl.constexpr,     # > 0: the split epilogue, y in (BD, 2, T/2V, V) tiles; 0: (T, BD) tiles
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1)
    pid_r = tl.program_id(2)
    cdt = A_ptr.dtype.element_ty

    d0 = pid_d * BD
    d = d0 + tl.arange(0, BD)                       # (BD,)
    dm = d < dim
    n = tl.arange(0, NP)                            # (NP,)
    nm = n < N
    t_i = tl.arange(0, T)                           # (T,)
    nd_off = d[None, :] * N + n[:, None]            # (NP, BD)
    ndm = nm[:, None] & dm[None, :]

    A2 = _log2e_times(_load_A(A_ptr, nd_off, ndm, A_LOG, cdt), cdt)   # (NP, BD)
    bias, Dv, Bc, Cc = _per_channel(bias_ptr, D_ptr, B_ptr, C_ptr, d, dm, nd_off, ndm, A2,
                                    HAS_BIAS, HAS_D, VAR_B, VAR_C, cdt)

    st_off = (pid_b.to(tl.int64) * R + pid_r) * dim * N + nd_off
    if HAS_HIN:
        h = tl.load(hin_ptr + st_off, mask=ndm, other=0.0).to(cdt)  # (NP, BD)
    else:
        h = tl.zeros([NP, BD], dtype=cdt)
    sdt = tl.zeros([BD], dtype=cdt)

    row_off = pid_b.to(tl.int64) * s_b + d[None, :].to(tl.int64) * s_d   # (1, BD)
    seg_lo = pid_r * spr
    seg_hi = tl.minimum(seg_lo + spr, nseg)
    t_lo = seg_lo * SEG
    t_hi = tl.minimum(seg_hi * SEG, L)
    # Triton pipelines the loads of the next chunks (cp.async) under this one.
    for t0 in tl.range(t_lo, t_hi, T, num_stages=STAGES):
        if SAVE_CKPT:
            if t0 % SEG == 0:
                tl.store(ckpt_ptr + (pid_b.to(tl.int64) * nseg + t0 // SEG) * dim * N + nd_off,
                         h.to(ckpt_ptr.dtype.element_ty), mask=ndm)
        t = t0 + t_i                                              # (T,)
        m2 = (t < L)[:, None] & dm[None, :]                       # (T, BD)
        ur, dr, zr, B3, C3 = _load_chunk(u_ptr, delta_ptr, z_ptr, B_ptr, C_ptr, Bc, Cc, row_off,
                                         t, dm, n, nm, d, cpgB, sBb, sBg, sBn, cpgC, sCb, sCg,
                                         sCn, L,
                                         HAS_Z and not STATE_ONLY, not STATE_ONLY, VAR_B, VAR_C,
                                         ONE_GROUP_B, ONE_GROUP_C, pid_b, d0, EVEN)
        dt, _ = _dt_from_raw(dr, bias, m2, HAS_BIAS, SOFTPLUS, cdt, FAST, not EVEN)
        dt = _pin(dt, PIN)                                        # (T, BD)
        uu = ur.to(cdt)
        dtu = _pin(dt * uu, PIN)                                  # (T, BD)
        a = tl.exp2(dt[:, None, :] * A2[None, :, :])              # (T, NP, BD)
        bx = dtu[:, None, :] * B3.to(cdt)                         # (T, NP, BD)
        if STATE_ONLY:
            h = _last(_scan_from(a, bx, h, T), T)                # (NP, BD)
            sdt += tl.sum(dt, axis=0)
        else:
            hs = _scan_from(a, bx, h, T)                          # (T, NP, BD)
            if V == 0:
                y = tl.sum(hs * C3.to(cdt), axis=1)               # (T, BD)
                h = _last(hs, T)
                if HAS_D:
                    y += Dv[None, :] * uu
                if HAS_Z:
                    zz = zr.to(cdt)
                    y = y * zz * _sigmoid(zz, FAST)
                # offsets summed before the pointer: the code (and speed) float32 had before V
                tl.store(y_ptr + (row_off + t[:, None]), y.to(y_ptr.dtype.element_ty), mask=m2)
            else:
                h = _last(hs, T)
                y = _state_sum(hs * C3.to(cdt), T, NP, BD, V)     # (BD, 2, Q, V)
                if HAS_D:
                    y += Dv[:, None, None, None] * _halves(uu, T, BD, V)
                if HAS_Z:
                    zz = _halves(zr, T, BD, V).to(cdt)
                    y = y * zz * _sigmoid(zz, FAST)
                d4 = d0 + tl.arange(0, BD)[:, None, None, None]
                # _halves' steps, built from aranges so that Triton sees V-step runs
                t4 = (t0 + tl.arange(0, 2)[None, :, None, None] * V
                      + tl.arange(0, T // (2 * V))[None, None, :, None] * (2 * V)
                      + tl.arange(0, V)[None, None, None, :])   # (1, 2, Q, V)
                if EVEN:
                    m4 = tl.broadcast_to(d4 < dim, (BD, 2, T // (2 * V), V))
                else:
                    m4 = (d4 < dim) & (t4 < L)
                tl.store(y_ptr + (pid_b.to(tl.int64) * s_b + d4.to(tl.int64) * s_d + t4),
                         y.to(y_ptr.dtype.element_ty), mask=m4)

    if STATE_ONLY:
        tl.store(hout_ptr + st_off, h.to(hout_ptr.dtype.element_ty), mask=ndm)
        tl.store(sdt_ptr + (pid_b.to(tl.int64) * R + pid_r) * dim + d,
                 sdt.to(sdt_ptr.dtype.element_ty), mask=dm)
    elif WRITE_LAST:
        if pid_r == R - 1:
            tl.store(hout_ptr + pid_b.to(tl.int64) * dim * N + nd_off,
                     h.to(hout_ptr.dtype.element_ty), mask=ndm)


@triton.jit
def _chain_kernel(
    A_ptr, e_ptr, s_ptr, init_ptr, out_ptr,
    dim, R,
    N: tl.constexpr, BLOCK: tl.constexpr, HAS_INIT: tl.constexpr, REVERSE: tl.constexpr,
    A_LOG: tl.constexpr,
):
    """Chain per-range affine maps ``x -> exp(A s_j) x + e_j`` over the R ranges.

    Forward: ``out[0] = init``, ``out[i] = map_{i-1}(out[i-1])``.
    Reverse: ``out[R-1] = init``, ``out[i] = map_{i+1}(out[i+1])``.
    ``e``, ``out``: (b, R, dim, N); ``s``: (b, R, dim); ``init``: (b, dim, N).
    """
    pid = tl.program_id(0)
    pid_b = tl.program_id(1)
    k = pid * BLOCK + tl.arange(0, BLOCK)           # flat (d, n) index
    km = k < dim * N
    dd = k // N
    cdt = A_ptr.dtype.element_ty
    A2 = _log2e_times(_load_A(A_ptr, k, km, A_LOG, cdt), cdt)   # (BLOCK,)
    if HAS_INIT:
        x = tl.load(init_ptr + pid_b.to(tl.int64) * dim * N + k, mask=km, other=0.0).to(cdt)
    else:
        x = tl.zeros([BLOCK], dtype=cdt)
    first = R - 1 if REVERSE else 0
    tl.store(out_ptr + (pid_b.to(tl.int64) * R + first) * dim * N + k, x, mask=km)
    # The loads do not depend on x: pipelining them keeps this serial loop from
    # paying a global-memory latency per range (it chains hundreds at L = 1M).
    for j in tl.range(1, R, num_stages=3):
        if REVERSE:
            i = R - 1 - j
            src = i + 1
        else:
            i = j
            src = j - 1
        e = tl.load(e_ptr + (pid_b.to(tl.int64) * R + src) * dim * N + k, mask=km, other=0.0)
        s = tl.load(s_ptr + (pid_b.to(tl.int64) * R + src) * dim + dd, mask=km, other=0.0)
        x = _carry(A2, s, x, e)
        tl.store(out_ptr + (pid_b.to(tl.int64) * R + i) * dim * N + k, x, mask=km)


# --------------------------------------------------------------------------- #
# Backward
# --------------------------------------------------------------------------- #
@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    dout_ptr,
    ckpt_ptr,     # (b, nseg, dim, N) forward checkpoints
    qin_ptr,      # (b, R, dim, N) adjoint entering each range from its end (R = 1: dlast)
    scr_ptr,      # (b, R, ndb, K, NP, BD) per-program chunk-state scratch
    du_ptr, ddelta_ptr, dz_ptr,                   # (b, dim, L), strided like u
    dA_ptr, dD_ptr, dbias_ptr,                    # (dim, N), (dim,), (dim,): zeroed, atomics
    dB_ptr, dC_ptr,                               # var (b G N L) strided like B, C, or const
                                                  # (dim N); zeroed, atomics
    dh0_ptr,                                      # (b, dim, N)
    qz_ptr, sq_ptr,                               # CARRY_ONLY, CHAIN: carry w from zero (b, R, dim, N),
                                                  # sum of Δ (b, R, dim)
    yout_ptr,                                     # WRITE_Y: the forward's output y (b, dim, L)
    dim, L, cpgB, sBb, sBg, sBn, cpgC, sCb, sCg, sCn, nseg, spr, R, ndb,
    s_b, s_d,                                     # strides of every (b, dim, L) tensor, as forward
    SEG: tl.constexpr, T: tl.constexpr, N: tl.constexpr, NP: tl.constexpr, BD: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_QIN: tl.constexpr, VAR_B: tl.constexpr, VAR_C: tl.constexpr,
    ONE_GROUP_B: tl.constexpr, ONE_GROUP_C: tl.constexpr, HAS_H0: tl.constexpr,
    CARRY_ONLY: tl.constexpr, STAGES: tl.constexpr, FAST: tl.constexpr, WRITE_Y: tl.constexpr,
    CHAIN: tl.constexpr, A_LOG: tl.constexpr, PIN: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1)
    pid_r = tl.program_id(2)
    cdt = A_ptr.dtype.element_ty
    K: tl.constexpr = SEG // T

    d0 = pid_d * BD
    d = d0 + tl.arange(0, BD)
    dm = d < dim
    n = tl.arange(0, NP)
    nm = n < N
    t_i = tl.arange(0, T)
    nd_off = d[None, :] * N + n[:, None]            # (NP, BD)
    ndm = nm[:, None] & dm[None, :]
    pnd = n[:, None] * BD + tl.arange(0, BD)[None, :]  # scratch offsets (NP, BD)

    A = _load_A(A_ptr, nd_off, ndm, A_LOG, cdt)                    # (NP, BD)
    A2 = _log2e_times(A, cdt)
    bias, Dv, Bc, Cc = _per_channel(bias_ptr, D_ptr, B_ptr, C_ptr, d, dm, nd_off, ndm, A2,
                                    HAS_BIAS, HAS_D, VAR_B, VAR_C, cdt)

    st_off = (pid_b.to(tl.int64) * R + pid_r) * dim * N + nd_off
    # The carry is w = e^{Δ_s A} q_s at the first step s of the last chunk done
    # (the adjoint as it leaves that step backwards); dlast enters as w itself.
    if CHAIN:
        # Few ranges: this program chains the later ranges' carries itself (what
        # _chain_kernel does for many), w <- e^{A Σ_j Δ} w + w_j for j = R-1 .. pid_r+1,
        # from dlast (qin, (b, dim, N)): one launch fewer for every backward.
        if HAS_QIN:
            w = tl.load(qin_ptr + pid_b.to(tl.int64) * dim * N + nd_off, mask=ndm, other=0.0).to(cdt)
        else:
            w = tl.zeros([NP, BD], dtype=cdt)
        for jr in range(0, R - 1 - pid_r):
            part_j = pid_b.to(tl.int64) * R + (R - 1 - jr)
            e = tl.load(qz_ptr + part_j * dim * N + nd_off, mask=ndm, other=0.0)
            sj = tl.load(sq_ptr + part_j * dim + d, mask=dm, other=0.0)
            w = _carry(A2, sj[None, :], w, e)
    elif HAS_QIN:
        w = tl.load(qin_ptr + st_off, mask=ndm, other=0.0).to(cdt)   # (NP, BD)
    else:
        w = tl.zeros([NP, BD], dtype=cdt)
    sdt = tl.zeros([BD], dtype=cdt)
    dA_acc = tl.zeros([NP, BD], dtype=cdt)
    dB_acc = tl.zeros([NP, BD], dtype=cdt)
    dC_acc = tl.zeros([NP, BD], dtype=cdt)
    dD_acc = tl.zeros([BD], dtype=cdt)
    db_acc = tl.zeros([BD], dtype=cdt)

    row_off = pid_b.to(tl.int64) * s_b + d[None, :].to(tl.int64) * s_d   # (1, BD)
    scr_base = ((pid_b.to(tl.int64) * R + pid_r) * ndb + pid_d) * K * NP * BD
    seg_lo = pid_r * spr
    seg_hi = tl.minimum(seg_lo + spr, nseg)
    for sr in range(0, seg_hi - seg_lo):
        s = seg_hi - 1 - sr
        t_seg = s * SEG
        n_chunks = tl.cdiv(tl.minimum(SEG, L - t_seg), T)
        ck_off = (pid_b.to(tl.int64) * nseg + s) * dim * N + nd_off
        if not CARRY_ONLY:
            if K > 1:
                # Recompute the state at the start of every chunk of this
                # segment but the first (the checkpoint itself).
                tl.debug_barrier()
                h = tl.load(ckpt_ptr + ck_off, mask=ndm, other=0.0).to(cdt)
                tl.store(scr_ptr + scr_base + pnd, h)
                for k in tl.range(1, n_chunks, num_stages=STAGES):
                    t = t_seg + (k - 1) * T + t_i
                    tm = t < L
                    m2 = tm[:, None] & dm[None, :]
                    off2 = row_off + t[:, None]
                    dt, _ = _step_sizes(delta_ptr, bias, off2, m2, HAS_BIAS, SOFTPLUS, cdt, FAST)
                    uu = tl.load(u_ptr + off2, mask=m2, other=0.0).to(cdt)
                    a = tl.exp2(dt[:, None, :] * A2[None, :, :])
                    B3 = _load_bc(B_ptr, Bc, t, tm, n, nm, d, dm, cpgB, sBb, sBg, sBn, VAR_B,
                                  ONE_GROUP_B, pid_b, d0, cdt)
                    h = _last(_scan_from(a, (dt * uu)[:, None, :] * B3, h, T), T)
                    tl.store(scr_ptr + scr_base + k * NP * BD + pnd, h)
                tl.debug_barrier()
        for kr in tl.range(0, n_chunks, num_stages=STAGES):
            k = n_chunks - 1 - kr
            t = t_seg + k * T + t_i
            tm = t < L
            m2 = tm[:, None] & dm[None, :]
            off2 = row_off + t[:, None]
            dt, x = _step_sizes(delta_ptr, bias, off2, m2, HAS_BIAS, SOFTPLUS, cdt, FAST)
            dt = _pin(dt, PIN)
            a = tl.exp2(dt[:, None, :] * A2[None, :, :])           # e^{Δ_t A}, (T, NP, BD)
            af = tl.flip(a, 0)
            dout = tl.load(dout_ptr + off2, mask=m2, other=0.0).to(cdt)
            C3 = _load_bc(C_ptr, Cc, t, tm, n, nm, d, dm, cpgC, sCb, sCg, sCn, VAR_C, ONE_GROUP_C,
                          pid_b, d0, cdt)
            if HAS_Z:
                zz = tl.load(z_ptr + off2, mask=m2, other=0.0).to(cdt)
                sz = _sigmoid(zz, FAST)
                dy = dout * zz * sz
            else:
                dy = dout
            # The reverse recurrence as a forward scan of time-flipped tiles: the
            # compiled reverse=True scan shuffled every element across lanes.
            if VAR_C:
                c = tl.flip(C3, 0) * tl.flip(dy, 0)[:, None, :]
            else:
                c = C3 * tl.flip(dy, 0)[:, None, :]
            qs = _adjoint_from(af, c, w, T)                        # q, time flipped
            w = _last(af, T) * _last(qs, T)                        # e^{Δ A} q at the first step
            if CARRY_ONLY:
                sdt += tl.sum(dt, axis=0)
            else:
                qs = tl.flip(qs, 0)                                # q_t, (T, NP, BD)
                if K > 1:
                    h0 = tl.load(scr_ptr + scr_base + k * NP * BD + pnd)  # (NP, BD)
                else:
                    h0 = tl.load(ckpt_ptr + ck_off, mask=ndm, other=0.0).to(cdt)
                uu = tl.load(u_ptr + off2, mask=m2, other=0.0).to(cdt)
                dtu = _pin(dt * uu, PIN)
                B3 = _load_bc(B_ptr, Bc, t, tm, n, nm, d, dm, cpgB, sBb, sBg, sBn, VAR_B, ONE_GROUP_B,
                              pid_b, d0, cdt)
                bx = dtu[:, None, :] * B3
                hs = _scan_from(a, bx, h0, T)                      # h_t, (T, NP, BD)
                if HAS_Z or WRITE_Y:
                    y = _state_lanes_sum(hs * C3, NP)              # (T, BD), before the gate
                    if HAS_D:
                        y += Dv[None, :] * uu
                if HAS_Z:
                    dz = dout * y * sz * (1.0 + zz * (1.0 - sz))
                    tl.store(dz_ptr + off2, dz.to(dz_ptr.dtype.element_ty), mask=m2)
                if WRITE_Y:  # the forward's output again, so that a caller need not keep it
                    if HAS_Z:
                        y = y * zz * sz
                    tl.store(yout_ptr + off2, y.to(yout_ptr.dtype.element_ty), mask=m2)
                hmb = hs - bx                                      # e^{ΔA} h_{t-1}
                qhmb = qs * hmb
                s1 = _state_lanes_sum(qs * B3, NP)                 # Σ_n q B, (T, BD)
                s2 = _state_lanes_sum(qhmb * A[None, :, :], NP)    # Σ_n q e^{ΔA} h_{t-1} A
                du = dt * s1
                if HAS_D:
                    du += dy * Dv[None, :]
                    dD_acc += tl.sum(dy * uu, axis=0)
                ddt = uu * s1 + s2
                if SOFTPLUS:
                    ddt = ddt * _softplus_grad(x, FAST)
                ddt = tl.where(m2, ddt, 0.0)
                db_acc += tl.sum(ddt, axis=0)
                tl.store(du_ptr + off2, du.to(du_ptr.dtype.element_ty), mask=m2)
                tl.store(ddelta_ptr + off2, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2)
                dA_acc += tl.sum(qhmb * dt[:, None, :], axis=0)
                gB = qs * dtu[:, None, :]                          # (T, NP, BD)
                gC = hs * dy[:, None, :]
                if VAR_B:
                    _scatter_group(dB_ptr, gB, t, tm, n, nm, d, dm, cpgB, sBb, sBg, sBn, dim, BD,
                                   ONE_GROUP_B, pid_b, d0)
                else:
                    dB_acc += tl.sum(gB, axis=0)
                if VAR_C:
                    _scatter_group(dC_ptr, gC, t, tm, n, nm, d, dm, cpgC, sCb, sCg, sCn, dim, BD,
                                   ONE_GROUP_C, pid_b, d0)
                else:
                    dC_acc += tl.sum(gC, axis=0)

    if CARRY_ONLY:
        part = pid_b.to(tl.int64) * R + pid_r
        tl.store(qz_ptr + st_off, w.to(qz_ptr.dtype.element_ty), mask=ndm)
        tl.store(sq_ptr + part * dim + d, sdt.to(sq_ptr.dtype.element_ty), mask=dm)
    else:
        # The b·R programs of a channel block add into one zeroed (dim, ...) slot:
        # summing per-program partials on the host cost a launch per gradient,
        # which dominates short sequences.
        if A_LOG:
            dA_acc = dA_acc * A  # the gradient of A_log: dA/dA_log = A
        tl.atomic_add(dA_ptr + nd_off, dA_acc, mask=ndm, sem="relaxed")
        if HAS_D:
            tl.atomic_add(dD_ptr + d, dD_acc, mask=dm, sem="relaxed")
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + d, db_acc, mask=dm, sem="relaxed")
        if not VAR_B:
            tl.atomic_add(dB_ptr + nd_off, dB_acc, mask=ndm, sem="relaxed")
        if not VAR_C:
            tl.atomic_add(dC_ptr + nd_off, dC_acc, mask=ndm, sem="relaxed")
        if HAS_H0:
            if pid_r == 0:
                # dL/dh_{-1} = e^{Δ_0 A} q_0: the carry after the first step.
                tl.store(dh0_ptr + pid_b.to(tl.int64) * dim * N + nd_off,
                         w.to(dh0_ptr.dtype.element_ty), mask=ndm)


@triton.jit
def _state_lanes_sum(x, NP: tl.constexpr):
    """``Σ_n x[t, n, d]`` of a backward ``(T, NP, BD)`` tile, as a reduce-scatter over its state lanes.

    The backward's tiles keep a channel's states on 4 lanes (the low two bits
    of ``n``; the rest in registers) and its ``(T, BD)`` tiles split the steps
    over the same 4 lanes. ``tl.sum`` over the states leaves every lane all
    ``T`` totals (two exchanges of ``T`` values a thread), of which the
    ``(T, BD)`` layout then keeps a quarter. Here each thread first sums its own
    states, then two ``split`` halvings of the lane axis exchange ``T/2`` and
    ``T/4`` values (as :func:`_channel_sum` does over channels, and
    :func:`_state_sum` over the forward's lane pair), leaving each lane the
    totals of its own steps. sass_census (Triton 3.6, backward loop a chunk):
    bf16 8x512x4096 1065 -> 987 instructions, 62 -> 14 shuffles; fp32
    8x1536x2048 1012 -> 934. H100 (2026-11-25, alternating processes,
    forward+backward us): bf16 8x1536x2048 1444 -> 1397, 8x512x4096 1037 ->
    1005, 8x1536x8192 5641 -> 5452; fp32 8x1536x2048 1543 -> 1485, 1x256x1M
    21411 -> 21532 (+0.6%).
    """
    if NP >= 4:
        T: tl.constexpr = x.shape[0]
        BD: tl.constexpr = x.shape[2]
        p = tl.sum(tl.reshape(x, (T, NP // 4, 2, 2, BD)), axis=1)        # (T, 2, 2, BD)
        a, b = tl.split(tl.permute(p, (0, 1, 3, 2)))                       # (T, 2, BD) each
        a, b = tl.split(tl.permute(a + b, (0, 2, 1)))                      # (T, BD) each
        return a + b
    else:
        return tl.sum(x, axis=1)


@triton.jit
def _halve_channels(x, W: tl.constexpr):
    """``x[..., :W/2] + x[..., W/2:]`` of a ``(T, NP, W)`` tile, as a ``split`` of the channel axis."""
    a, b = tl.split(tl.permute(tl.reshape(x, (x.shape[0], x.shape[1], 2, W // 2)), (0, 1, 3, 2)))
    return a + b


@triton.jit
def _channel_sum(g3, BD: tl.constexpr):
    """``Σ_d g3[t, n, d]`` of a ``(T, NP, BD)`` tile, for the B and C gradients.

    The backward's tiles put 8 channels on 8 lanes; ``tl.sum`` over them is a
    butterfly that leaves every lane all ``T·NP/4`` sums (three exchanges of
    32 values a thread, for B and again for C).
    Halving the channel axis by ``split``, whose halves must sit in registers,
    makes Triton trade each channel lane bit for a step or state bit: every
    level exchanges half of what is left (a reduce-scatter, 16 + 8 + 4
    values; :func:`_state_sum` does the same over the forward's state lanes).
    sass_census (Triton 3.6, backward loop a chunk): bf16 8x512x4096 1339 ->
    1065 instructions, 246 -> 62 shuffles; fp32 8x1536x2048 1284 -> 1012.
    H100 (2026-11-25, alternating processes, forward+backward us): bf16
    8x1536x2048 1658 -> 1444, 8x512x4096 1179 -> 1037, 8x1536x8192 6475 ->
    5640; fp32 8x1536x2048 1736 -> 1545, 8x1536x720 663 -> 550, 1x256x1M
    22230 -> 21417.
    """
    x = g3
    if BD >= 2:
        x = _halve_channels(x, BD)
    if BD >= 4:
        x = _halve_channels(x, BD // 2)
    if BD >= 8:
        x = _halve_channels(x, BD // 4)
    return tl.sum(x, axis=2)  # what is left of wider tiles


@triton.jit
def _scatter_group(ptr, g3, t, tm, n, nm, d, dm, cpg, s_b, s_g, s_n, dim, BD: tl.constexpr,
                   ONE_GROUP: tl.constexpr, pid_b, d0):
    """Add ``g3`` (T, NP, BD), summed over each group's channels, into (b, G, N, L) (strides s_*)."""
    msk = tm[:, None] & nm[None, :]
    off = n[None, :].to(tl.int64) * s_n + t[:, None]               # (T, NP)
    if ONE_GROUP:
        part = _channel_sum(g3, BD)
        row = pid_b.to(tl.int64) * s_b + (d0 // cpg) * s_g
        tl.atomic_add(ptr + row + off, part, mask=msk, sem="relaxed")
    else:
        g_lo = d0 // cpg
        g_hi = (tl.minimum(d0 + BD, dim) - 1) // cpg
        for g in range(g_lo, g_hi + 1):
            w = (d // cpg == g) & dm
            part = _channel_sum(tl.where(w[None, None, :], g3, 0.0), BD)
            row = pid_b.to(tl.int64) * s_b + g * s_g
            tl.atomic_add(ptr + row + off, part, mask=msk, sem="relaxed")


# --------------------------------------------------------------------------- #
# Host side
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Config:
    """Tile sizes of one call.

    ``BD`` channels per program, ``T`` time steps per chunk (forward / backward),
    ``SEG`` steps between saved states (a multiple of both ``T``), ``R`` time
    ranges run in parallel (``None``: enough to fill the device).
    """

    BD: int
    T_fwd: int
    T_bwd: int
    SEG: int
    num_warps: int
    R: int | None = None
    BD_bwd: int | None = None         # backward tiles (default: the forward's)
    num_warps_bwd: int | None = None
    stages: int = 1                   # Triton software-pipelining depth of the time loop
    stages_bwd: int = 1
    fill: int = 16                    # warps per multiprocessor that time ranges aim for
    fill_bwd: int | None = None
    min_range: int = 0                # fewest steps per time range (0: no floor)
    min_range_bwd: int | None = None  # backward's floor (default: the forward's)
    T_state: int | None = None        # chunk of the forward's state-only pass (default T_fwd)
    T_ranged: int | None = None       # chunk of the forward's main pass when R > 1 (default T_fwd)
    enough: int = 0                   # forward: one range when the channel blocks alone give
                                      # this many warps per multiprocessor (0: off)

    def __post_init__(self):
        # Ranges and checkpoints are whole segments; a chunk may not straddle one.
        chunks = (self.T_fwd, self.T_bwd, self.T_state or self.T_fwd, self.T_ranged or self.T_fwd)
        if any(self.SEG % t for t in chunks):
            raise ValueError(f"SEG={self.SEG} must be a multiple of every chunk length {chunks}")


@functools.lru_cache(maxsize=None)
def _default_config(N: int, interpret: bool, wide: bool = False, stages: int = 3) -> _Config:
    """Tiles measured best on an H100 (Triton 3.6) at N = 16; scaled for other N.

    One warp per program: the chunk's layout conversions and the sums over
    states then never wait at a block-wide barrier, and many small programs
    keep the multiprocessors busy. The forward takes 16 steps a chunk (at
    N = 16) and 8 channels a program, or 16 when ``wide``: :func:`_config_for`
    widens the tiles when 8-channel programs would not fit in one wave at 8
    warps a multiprocessor (their occupancy at ~230 registers), since a
    partly filled second wave costs more than the wider tile's longer chunk.
    ``stages``: the forward's pipelining depth (4 for 4-byte inputs, 3 for
    half precision: with the split epilogue of :func:`_split_store` depth 3
    was 0.5% faster than 4 on the wide bf16 tiles in 4 of 5 same-process
    pairs, 8x1536x2048 224.2 against 225.3 us). The backward pipelines its loads
    (``stages_bwd``: 2 was 4-10% faster than 1 on every benchmark row, 3
    another 1-3%) and splits time into ranges from 512 steps on (the Mamba
    block's 8x512x1024 bf16 backward: 0.49 -> 0.45 ms).

    Forward GPU time with :func:`_pin` in place (H100, Triton 3.6,
    2026-11-24, us; 8 channels x 16 steps at depth 3 / 4, 16 x 16 at 3 / 4,
    and the tiles used before, 16 channels x 8 steps for float32 above 4096
    channels):

    ============================  ===========  ===========  ==========
    row                           8 x 16       16 x 16      before
    ============================  ===========  ===========  ==========
    bf16 8x1536x2048              255 / 254    244 / 242    256
    bf16 8x1536x8192              989 / 987    948 / 939    991
    bf16 8x1024x2048              160 / 160    164 / 164    160
    bf16 8x512x4096               207 / 209    229 / 231    208
    fp32 8x1536x2048              310 / 307    268 / 262    277
    fp32 8x1536x8192              1048 / 1016  1042 / 1014  1070
    fp32 8x1536x720               115 / 114    101 / 99     102
    fp32 8x1024x2048              174 / 163    189 / 174    274
    fp32 4x1536x2048              153 / 147    385 / 1801   251
    fp32 8x512x4096               219 / 212    504 / 2326   219
    fp32 1x256x1M                 4763 / 4772  7493 / 37k   4768
    ============================  ===========  ===========  ==========

    (Wide tiles with few channels need time ranges, where depth 4 is
    disastrous: they are never chosen there.)
    """
    NP = next_pow2(N)
    if interpret:
        # The interpreter runs every tile op in numpy: small tiles, several
        # chunks per segment and segments per range so every path is exercised.
        return _Config(BD=16, T_fwd=8, T_bwd=4, SEG=16, num_warps=1)
    t = max(2, min(32, 128 // NP))   # the backward's chunk (8 at N = 16)
    T = max(2, min(32, 256 // NP))   # the forward's (16 at N = 16)
    return _Config(BD=16 if wide else 8, T_fwd=T, T_bwd=min(t, 16), SEG=128, num_warps=1, stages=stages,
                   fill=64, enough=3, T_state=T, BD_bwd=8, num_warps_bwd=1, stages_bwd=3, fill_bwd=64,
                   min_range=1024, min_range_bwd=512)


# Multiprocessors assumed for CPU tensors, which only ask for the GPU's tiles in tests and in
# benchmarks/sass_census.py (an H100 SXM's).
_NOMINAL_SMS = 132


def _config_for(u: torch.Tensor, N: int) -> _Config:
    """The tiles of a call: the override if set, else the defaults for ``u``'s shape and dtype."""
    if _CONFIG_OVERRIDE is not None:
        return _CONFIG_OVERRIDE
    if _interpret_enabled():
        return _default_config(N, True)
    sms = _sm_count(u.device.index if u.device.index is not None else torch.cuda.current_device()) \
        if u.is_cuda else _NOMINAL_SMS
    wide = u.shape[0] * u.shape[1] > 8 * 8 * sms  # 8-channel programs: more than 8 warps an SM
    return _default_config(N, False, wide, 4 if u.element_size() >= 4 else 3)


_CONFIG_OVERRIDE: _Config | None = None  # tests and benchmarks set this
# Up to this many time ranges, the backward's main kernel chains the ranges' carries
# itself (at most this many small loads a program) instead of a separate chaining
# launch: a launch costs tens of microseconds of host time, the Mamba block's
# backward at L = 4096 runs 8 ranges, and a million steps hundreds.
_CHAIN_IN_KERNEL = 16
_FAST = True  # benchmarks may turn the inline-PTX approximations off to compare


def _fast_math(u: torch.Tensor, cdt: torch.dtype) -> int:
    """The kernels' ``FAST`` level: 0 exact, 1 softplus by a polynomial and approximate division, 2 also
    a flushing exp and reciprocal.

    Float32 math in kernels compiled for CUDA only (level 2 is inline PTX; the
    interpreter and the exact references keep level 0). Level 2 (the exps of
    softplus and the gate through :func:`_exp`, and divisions as a product with
    a bare MUFU.RCP in :func:`_div`) is for half-precision inputs, where it paid
    on an H100 (Triton 3.6, 2026-11-24, same-machine A/B, bf16 forward: the exp
    8x1536x2048 303 -> 288 us, 8x1536x8192 1157 -> 1100; the reciprocal 289 ->
    272 and 1101 -> 1031; forward+backward -3.5% and -2.4%); with float32
    inputs each made the same kernels slower (exp: 8x1536x2048 forward 288 -> 300
    us, forward+backward 1788 -> 1921; reciprocal: 290 -> 294 and 1794 -> 1890)
    although their loops got shorter (sass_census: 728 -> 707 instructions).
    """
    if not (_FAST and cdt == torch.float32 and _compiled(u)):
        return 0
    return 2 if u.element_size() == 2 else 1


def _compiled(u: torch.Tensor) -> bool:
    """Whether the kernels for ``u`` compile for a GPU (rather than run in Triton's interpreter)."""
    return u.device.type == "cuda" and not _interpret_enabled()


def _pinned(u: torch.Tensor, backward: bool) -> bool:
    """``PIN`` of :func:`_pin`: compiled kernels only; the backward's for half precision only."""
    return _compiled(u) and (not backward or u.element_size() == 2)


def _split_store(u: torch.Tensor, T: int) -> int:
    """The forward's ``V``: steps a thread stores (:func:`_halves`), or 0 for the plain epilogue.

    Half-precision outputs take the split epilogue (:func:`_state_sum`,
    ``V = min(8, T/2)``: 16 bytes of a row) and, when ``T`` divides ``L``, a
    loop without time masks (``EVEN``); float32 outputs keep the plain
    ``(T, BD)`` one. H100 (Triton 3.6, 2026-11-24, alternating processes, forward us):
    bf16 8x1536x2048 235 -> 225, 8x1536x2000 228 -> 214, 8x1536x8192 912 -> 872,
    8x512x4096 201 -> 192. With float32 outputs both forms tried were slower
    although their loops were shorter (8x1536x2048: 249 -> 272 with eight
    floats a thread, 302 with four, ``EVEN`` included), and ``EVEN`` alone
    cost 3.5% (250 -> 258), so float32 keeps the kernel it had.
    """
    return min(8, T // 2) if u.element_size() == 2 else 0


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _ranges(programs: int, nseg: int, device: torch.device, R: int | None, warps: int,
            fill: int, min_segs: int = 1, enough: int = 0) -> tuple[int, int]:
    """Number of parallel time ranges and segments per range.

    Enough ranges that ``fill`` warps per multiprocessor have work, but none
    shorter than ``min_segs`` segments, and a single range when the channel
    blocks alone already give ``enough`` warps per multiprocessor: more than
    one range costs a second pass over u, delta and B (about 60% of the main
    pass) and two more launches, which only a badly underfilled device
    repays (measured on an H100: 8x1536x8192 forward 1.11 ms with one range,
    1.49 ms with eleven; 1x256x1M needs hundreds).
    """
    if R is None:
        if device.type == "cuda":
            sms = _sm_count(device.index if device.index is not None else
                            torch.cuda.current_device())
            if enough and programs * warps >= enough * sms:
                R = 1
            else:
                R = max(1, cdiv(fill * sms, max(programs * warps, 1)))
                R = min(R, max(1, nseg // max(1, min_segs)))
        else:
            R = 1
    R = max(1, min(int(R), nseg))
    spr = cdiv(nseg, R)
    return cdiv(nseg, spr), spr


@dataclass
class _Problem:
    """Shapes and flags of one call, shared by the forward and backward launches."""

    b: int
    dim: int
    L: int
    N: int
    NP: int
    var_b: bool
    var_c: bool
    GB: int
    GC: int
    sB: tuple  # batch, group and state strides of a time-varying B (time stride 1), else zeros
    sC: tuple
    cfg: _Config
    nseg: int
    R: int
    spr: int
    ndb: int
    BD: int
    num_warps: int

    def group_args(self):
        cpgB = self.dim // self.GB
        cpgC = self.dim // self.GC
        return (cpgB, *self.sB, cpgC, *self.sC)

    def one_group(self):
        cpgB, cpgC = self.dim // self.GB, self.dim // self.GC
        bd = self.BD
        return (not self.var_b) or cpgB % bd == 0, (not self.var_c) or cpgC % bd == 0


def _problem(u, A, B, C, cfg: _Config, backward: bool = False) -> _Problem:
    b, dim, L = u.shape
    N = A.shape[1]
    var_b, var_c = B.dim() == 4, C.dim() == 4
    BD = (cfg.BD_bwd or cfg.BD) if backward else cfg.BD
    nw = (cfg.num_warps_bwd or cfg.num_warps) if backward else cfg.num_warps
    nseg = cdiv(L, cfg.SEG)
    ndb = cdiv(dim, BD)
    fill = (cfg.fill_bwd or cfg.fill) if backward else cfg.fill
    min_range = cfg.min_range
    if backward and cfg.min_range_bwd is not None:
        min_range = cfg.min_range_bwd
    R, spr = _ranges(b * ndb, nseg, u.device, cfg.R, nw, fill, cdiv(min_range, cfg.SEG),
                     0 if backward else cfg.enough)
    return _Problem(b, dim, L, N, next_pow2(N), var_b, var_c, B.shape[1] if var_b else 1,
                    C.shape[1] if var_c else 1, _bc_strides(B, var_b, L), _bc_strides(C, var_c, L),
                    cfg, nseg, R, spr, ndb, BD, nw)


def _bc_strides(x: torch.Tensor, var: bool, L: int) -> tuple:
    """(batch, group, state) strides of a time-varying ``(b, G, N, L)`` B or C; time must be stride 1."""
    if not var:
        return (0, 0, 0)
    if L > 1 and x.stride(3) != 1:
        raise ValueError(f"B and C need time as their contiguous axis, got strides {x.stride()}")
    return x.stride()[:3]


def _row_strides(u: torch.Tensor, **others) -> tuple:
    """``u``'s batch and channel strides, which every other ``(b, dim, L)`` tensor must share.

    The kernels address u, delta, z, the output and all their gradients with
    one pair of strides and time stride 1: contiguous ``(b, dim, L)`` tensors
    from the public API, or the Mamba block's channel-major ``(dim, b, L)``
    buffers seen as ``(b, dim, L)`` views.
    """
    shape, st = u.shape, u.stride()
    if shape[2] > 1 and st[2] != 1:
        raise ValueError(f"u needs time as its contiguous axis, got strides {st}")
    for name, x in others.items():
        if x is None:
            continue
        xs = x.stride()
        if xs != st and any(n > 1 and a != b for n, a, b in zip(shape, xs, st)):  # (equal: the usual case)
            raise ValueError(f"{name} has strides {xs}, u has {st}: they must match")
    return st[0], st[1]


def _forward(u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, pr: _Problem,
             save: bool, a_log: bool = False):
    """``(y, last state, checkpoints or None)``; ``a_log``: ``A`` holds log(-A) (the block's A_log)."""
    cfg = pr.cfg
    cdt = A.dtype
    b, dim, L, N = pr.b, pr.dim, pr.L, pr.N
    dev = u.device
    y = torch.empty_like(u)  # u's layout (empty_like keeps a dense tensor's strides)
    rows = _row_strides(u, delta=delta, z=z, y=y)
    last = torch.empty(b, dim, N, device=dev, dtype=cdt)
    ckpt = torch.empty(b, pr.nseg, dim, N, device=dev, dtype=cdt) if save else last
    grid = (pr.ndb, b, pr.R)
    ogb, ogc = pr.one_group()
    common = dict(SEG=cfg.SEG, N=N, NP=pr.NP, BD=pr.BD, HAS_D=D is not None, HAS_Z=z is not None,
                  HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(softplus), VAR_B=pr.var_b,
                  VAR_C=pr.var_c, ONE_GROUP_B=ogb, ONE_GROUP_C=ogc, num_warps=pr.num_warps,
                  STAGES=cfg.stages,
                  FAST=_fast_math(u, cdt), A_LOG=a_log, PIN=_pinned(u, backward=False))
    dummy = A
    ptrs = (u, delta, A, B, C, D if D is not None else dummy, z if z is not None else dummy,
            delta_bias if delta_bias is not None else dummy)
    if pr.R > 1:
        hend = torch.empty(b, pr.R, dim, N, device=dev, dtype=cdt)
        sdt = torch.empty(b, pr.R, dim, device=dev, dtype=cdt)
        T = cfg.T_state or cfg.T_fwd
        launch(_fwd_kernel, grid, *ptrs, dummy, dummy, hend, dummy, sdt, dim, L, *pr.group_args(),
               pr.nseg, pr.spr, pr.R, *rows, T=T, EVEN=False, V=0, HAS_HIN=False,
               STATE_ONLY=True,
               SAVE_CKPT=False, WRITE_LAST=False, **common)
        hin = torch.empty(b, pr.R, dim, N, device=dev, dtype=cdt)
        _chain(A, hend, sdt, initial_state, hin, pr, reverse=False, a_log=a_log)
    else:
        hin = initial_state
    T = (cfg.T_ranged or cfg.T_fwd) if pr.R > 1 else cfg.T_fwd
    V = _split_store(u, T)
    launch(_fwd_kernel, grid, *ptrs, hin if hin is not None else dummy, y, last, ckpt, dummy, dim, L,
           *pr.group_args(), pr.nseg, pr.spr, pr.R, *rows,
           T=T, EVEN=V > 0 and L % T == 0, V=V,
           HAS_HIN=hin is not None, STATE_ONLY=False, SAVE_CKPT=save, WRITE_LAST=True,
           **common)
    return y, last, (ckpt if save else None)


def _chain(A, e, s, init, out, pr: _Problem, reverse: bool, a_log: bool):
    BLOCK = 256
    grid = (cdiv(pr.dim * pr.N, BLOCK), pr.b)
    launch(_chain_kernel, grid, A, e, s, init if init is not None else A, out, pr.dim, pr.R, N=pr.N,
           BLOCK=BLOCK, HAS_INIT=init is not None, REVERSE=reverse, A_LOG=a_log)


def _backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus,
              ckpt, pr: _Problem, dz_out: torch.Tensor | None = None,
              y_out: torch.Tensor | None = None, dB_out: torch.Tensor | None = None,
              dC_out: torch.Tensor | None = None, a_log: bool = False,
              zeroed: dict | None = None):
    """Gradients of the scan (a dict by input name) from the output's gradient ``dout``.

    Every ``(b, dim, L)`` tensor (u, delta, z, dout and the outputs) shares
    u's strides. ``dz_out``: a view to write dz into; ``y_out``: a tensor that
    receives the forward's output ``y`` recomputed on the way (the fused Mamba
    block keeps no copy of it between its forward and backward); ``dB_out``,
    ``dC_out``: zeroed tensors in the compute dtype, strided like a
    time-varying B and C, that the gradients are added into (the block's
    buffer for its projection's gradient) instead of fresh ones; ``a_log``:
    ``A`` holds log(-A), and the gradient returned as ``"A"`` is that of log(-A);
    ``zeroed``: zeroed compute-dtype tensors for the per-channel gradients
    (``"A"`` (dim, N), ``"D"``, ``"delta_bias"`` (dim,) as needed) to add into,
    views of one buffer the caller shares with other gradients (one memset).
    """
    cfg = pr.cfg
    cdt = A.dtype
    b, dim, L, N, R = pr.b, pr.dim, pr.L, pr.N, pr.R
    dev = u.device
    grid = (pr.ndb, b, R)
    ogb, ogc = pr.one_group()
    dummy = A
    common = dict(SEG=cfg.SEG, T=cfg.T_bwd, N=N, NP=pr.NP, BD=pr.BD, HAS_D=D is not None,
                  HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(softplus),
                  VAR_B=pr.var_b, VAR_C=pr.var_c, ONE_GROUP_B=ogb, ONE_GROUP_C=ogc,
                  HAS_H0=initial_state is not None, num_warps=pr.num_warps,
                  STAGES=cfg.stages_bwd,
                  FAST=_fast_math(u, cdt), A_LOG=a_log, PIN=_pinned(u, backward=True))
    ptrs = (u, delta, A, B, C, D if D is not None else dummy, z if z is not None else dummy,
            delta_bias if delta_bias is not None else dummy, dout)
    # empty_like keeps the strides of a dense u; the check also refuses any other layout.
    du = torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = dz_out if dz_out is not None else (torch.empty_like(u) if z is not None else None)
    rows = _row_strides(u, delta=delta, z=z, dout=dout, du=du, ddelta=ddelta, dz=dz, y_out=y_out)
    dz = dz if dz is not None else dummy
    sizes = (dim, L, *pr.group_args(), pr.nseg, pr.spr, R, pr.ndb, *rows)
    if R > 1:
        wz = torch.empty(b, R, dim, N, device=dev, dtype=cdt)   # each range's carry from zero
        sdt = torch.empty(b, R, dim, device=dev, dtype=cdt)     # and its sum of step sizes
        launch(_bwd_kernel, grid, *ptrs, dummy, dummy, dummy, *(dummy,) * 3, *(dummy,) * 3,
               dummy, dummy, dummy, wz, sdt, dummy, *sizes, HAS_QIN=False, CARRY_ONLY=True,
               WRITE_Y=False, CHAIN=False, **common)
    chain = 1 < R <= _CHAIN_IN_KERNEL
    if R > 1 and not chain:
        qin = torch.empty(b, R, dim, N, device=dev, dtype=cdt)
        _chain(A, wz, sdt, dlast, qin, pr, reverse=True, a_log=a_log)
    else:
        qin = dlast  # chain: each program composes the later ranges' carries itself
    K = cfg.SEG // cfg.T_bwd
    # K == 1: every chunk starts at a checkpoint, no recomputed states to keep.
    scratch = torch.empty(b * R * pr.ndb * K * pr.NP * pr.BD, device=dev, dtype=cdt) if K > 1 else dummy
    dh0 = torch.empty(b, dim, N, device=dev, dtype=cdt) if initial_state is not None else dummy
    # The gradients the kernel accumulates with atomics live in two zeroed
    # buffers, the per-step B/C ones and the per-channel ones: two memsets
    # instead of one per tensor plus host sums (each launch costs tens of
    # microseconds of host time, the whole GPU time of a short scan). Two, so
    # that a parameter's .grad (a view) does not keep the large ones alive.
    given = dict(B=dB_out, C=dC_out)
    for k, x, out, var in (("B", B, dB_out, pr.var_b), ("C", C, dC_out, pr.var_c)):
        if out is not None and (not var or out.shape != x.shape or out.dtype != cdt
                                or _bc_strides(out, True, L) != _bc_strides(x, True, L)):
            raise ValueError(f"d{k}_out must be a {cdt} tensor of {k}'s shape and strides")
        if out is None and var and not x.is_contiguous():
            # The kernel adds the gradient through B's (C's) strides; a fresh buffer is contiguous.
            raise ValueError(f"a time-varying {k} that is not contiguous needs d{k}_out strided like it")
    views = _zeroed_views(dict(B=B.shape if pr.var_b and dB_out is None else None,
                               C=C.shape if pr.var_c and dC_out is None else None), dev, cdt)
    views.update({k: v for k, v in given.items() if v is not None})
    per_channel = dict(A=(dim, N), B=None if pr.var_b else (dim, N), C=None if pr.var_c else (dim, N),
                       D=(dim,) if D is not None else None,
                       delta_bias=(dim,) if delta_bias is not None else None)
    if zeroed is not None:
        for k, shape in per_channel.items():
            check_buffer(f"zeroed[{k!r}]", zeroed.get(k), shape, cdt)
        views.update({k: zeroed[k] for k, shape in per_channel.items() if shape is not None})
    else:
        views.update(_zeroed_views(per_channel, dev, cdt))
    launch(_bwd_kernel, grid, *ptrs, ckpt, qin if qin is not None else dummy, scratch, du, ddelta, dz,
           views["A"], views.get("D", dummy), views.get("delta_bias", dummy),
           views["B"], views["C"], dh0, wz if chain else dummy, sdt if chain else dummy,
           y_out if y_out is not None else dummy, *sizes,
           HAS_QIN=qin is not None, CARRY_ONLY=False, WRITE_Y=y_out is not None, CHAIN=chain, **common)
    inputs = dict(A=A, B=B, C=C, D=D, delta_bias=delta_bias)
    # dB_out, dC_out come back as given (the caller's buffers, in the compute dtype)
    grads = {k: v if v.dtype == inputs[k].dtype or given.get(k) is v else v.to(inputs[k].dtype)
             for k, v in views.items()}
    grads.update(u=du, delta=ddelta, z=dz if z is not None else None,
                 initial_state=dh0.to(initial_state.dtype) if initial_state is not None else None)
    grads.setdefault("D", None)
    grads.setdefault("delta_bias", None)
    return grads


def _alert_atomics(what: str) -> None:
    """Honour ``torch.use_deterministic_algorithms``: this backward sums with atomics."""
    if torch.are_deterministic_algorithms_enabled():
        msg = (f"{what} adds gradients with atomics, so they are not bitwise reproducible; "
               "use backend='torch' for deterministic gradients")
        if torch.is_deterministic_algorithms_warn_only_enabled():
            warnings.warn(msg, UserWarning, stacklevel=3)
        else:
            raise RuntimeError(msg)


def _zeroed_views(shapes: dict, device, dtype) -> dict:
    """Zeroed tensors of ``shapes`` (None: skipped) as views of one buffer, each 16-byte aligned."""
    shapes = {k: v for k, v in shapes.items() if v is not None}
    if not shapes:
        return {}
    align = 128 // torch.finfo(dtype).bits  # elements per 16 bytes
    sizes = [math.prod(v) for v in shapes.values()]
    padded = [cdiv(n, align) * align for n in sizes]
    buf = torch.zeros(sum(padded), device=device, dtype=dtype)
    out, start = {}, 0
    for (k, shape), m in zip(shapes.items(), padded):
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        out[k] = buf.as_strided(shape, strides, start)  # one call: the view of a fresh buffer
        start += m
    return out


def float_bc(x: torch.Tensor, cdt: torch.dtype) -> torch.Tensor:
    """A time-varying half-precision B or C as a float32 copy; anything else as it is.

    Each lane along a program's channels needs its own float32 copy of a
    chunk's B and C (the channels share them), so widening half-precision ones
    in the kernels costs instructions at every lane: a fifth of the bf16
    forward's main loop (``benchmarks/sass_census.py``: 946 -> 766 instructions,
    at 232 registers instead of 156). One copy of the ``b·G·N·L`` elements
    beforehand costs a few microseconds; the bf16 scan, copy included, took
    5-8% less GPU time forward and 3-5% forward+backward (H100, 2026-11-24:
    8x1536x2048 forward 321 -> 304 us, 8x1536x8192 1262 -> 1159, 8x512x4096
    317 -> 301). This replaced widening B and C in the kernels by a shift and
    a mask (2-5%).
    """
    if x.dim() == 4 and x.element_size() == 2 and cdt == torch.float32:
        return x.to(torch.float32, memory_format=torch.contiguous_format)
    return x


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, cfg):
        ctx.bc_dtypes = B.dtype, C.dtype
        # _backward adds dB, dC into fresh contiguous buffers: a time-varying B or C that is
        # not contiguous is copied here (float_bc's copy already is; the public API passes
        # contiguous ones).
        B, C = (float_bc(x, A.dtype) for x in (B, C))
        B, C = (x.contiguous() if x.dim() == 4 else x for x in (B, C))
        pr = _problem(u, A, B, C, cfg)
        y, last, ckpt = _forward(u, delta, A, B, C, D, z, delta_bias, initial_state, softplus,
                                 pr, save=True)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, ckpt)
        ctx.softplus = softplus
        ctx.pr = pr
        ctx.set_materialize_grads(False)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        refuse_create_graph("selective_scan (backend='triton')",
                            "use selective_scan_ref, the plain differentiable definition")
        _alert_atomics("selective_scan backward (backend='triton')")
        u, delta, A, B, C, D, z, delta_bias, initial_state, ckpt = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(u)
        if dlast is not None:
            dlast = dlast.to(A.dtype).contiguous()
        pr = _problem(u, A, B, C, ctx.pr.cfg, backward=True)
        g = _backward(dy.contiguous(), dlast, u, delta, A, B, C, D, z, delta_bias,
                      initial_state, ctx.softplus, ckpt, pr)
        dB, dC = (x if x.dtype == dt else x.to(dt) for x, dt in zip((g["B"], g["C"]), ctx.bc_dtypes))
        return (g["u"], g["delta"], g["A"], dB, dC, g["D"], g["z"], g["delta_bias"],
                g["initial_state"], None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False, initial_state=None):
    """Selective scan with Triton kernels (inputs already validated and normalized).

    Parameters
    ----------
    u, delta : torch.Tensor
        ``(batch, dim, L)``, contiguous, one dtype among float32, float16,
        bfloat16, float64.
    A : torch.Tensor
        ``(dim, N)``, float32 (float64 when ``u`` is float64).
    B, C : torch.Tensor
        ``(batch, G, N, L)`` contiguous (channel ``d`` uses group
        ``d // (dim // G)``) or time-invariant ``(dim, N)``.
    D, delta_bias : torch.Tensor or None
        ``(dim,)``.
    z : torch.Tensor or None
        ``(batch, dim, L)`` gate, like ``u``.
    delta_softplus : bool
        Apply softplus to ``delta + delta_bias``.
    return_last_state : bool
        Also return the state after the last step.
    initial_state : torch.Tensor or None
        ``(batch, dim, N)`` state before the first step.

    Returns
    -------
    y : torch.Tensor
        ``(batch, dim, L)`` in ``u``'s dtype.
    last_state : torch.Tensor
        ``(batch, dim, N)`` in ``A``'s dtype, when ``return_last_state``.

    Notes
    -----
    Differentiable with respect to every tensor input, and, unlike
    mamba_ssm, also through ``last_state`` (so scans can be chained with
    ``initial_state`` during training). The forward pass saves the state
    every 128 steps when a gradient is needed; the backward pass recomputes
    the rest segment by segment.

    Examples
    --------
    Needs CUDA tensors (or CPU tensors with ``TRITON_INTERPRET=1`` set before
    Triton is imported), hence skipped here:

    >>> import torch
    >>> from sciamba.kernels._triton_scan import selective_scan_triton
    >>> u = torch.randn(1, 3, 5, device="cuda")  # doctest: +SKIP
    >>> y, h = selective_scan_triton(
    ...     u, torch.rand_like(u), -torch.rand(3, 2, device="cuda"),
    ...     torch.randn(1, 1, 2, 5, device="cuda"), torch.randn(1, 1, 2, 5, device="cuda"),
    ...     None, None, None, False, True, None)  # doctest: +SKIP
    >>> y.shape, h.shape  # doctest: +SKIP
    (torch.Size([1, 3, 5]), torch.Size([1, 3, 2]))
    """
    cfg = _config_for(u, A.shape[1])
    with on_device(u):
        if grad_needed(u, delta, A, B, C, D, z, delta_bias, initial_state):
            y, last = _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias,
                                                 initial_state, bool(delta_softplus), cfg)
        else:
            B, C = float_bc(B, A.dtype), float_bc(C, A.dtype)
            y, last, _ = _forward(u, delta, A, B, C, D, z, delta_bias, initial_state,
                                  delta_softplus, _problem(u, A, B, C, cfg), save=False)
    return (y, last) if return_last_state else y


