"""The Mamba block and the Mamba residual stack (Gu & Dao, 2023).

Shapes follow the annotation style of state-spaces/s4: ``b`` batch, ``L``
length, ``d`` model width, ``E`` inner width (``expand * d``), ``N`` state
size, ``R`` rank of the step-size projection, ``k`` convolution width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sciamba import kernels
from sciamba.kernels._backends import resolve_backend
from sciamba.kernels._math import discretize_delta
from sciamba.ssm import s4d_init

from ._checks import check_dropout, check_gaps, check_positive_int, check_sequence, check_step_gap
from ._mamba_inner import mamba_inner
from ._mamba_step import fused_step_applies, stack_step
from ._norm import RMSNorm

__all__ = ["MambaBlock", "Mamba", "MambaBlockState", "MambaState", "selective_ssm"]

#: Train through the fused block node (``_mamba_inner``) where it applies; benchmarks turn it off to compare.
FUSED_TRAINING = True


def _matmul_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the block's products run in: autocast's where it is on, else ``x``'s.

    As autocast itself: float64 is never lowered.
    """
    if x.dtype == torch.float64:
        return x.dtype
    kind = x.device.type
    try:  # torch >= 2.4
        on, dtype = torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)
    except (TypeError, AttributeError):  # torch 2.2-2.3: per-device functions
        if kind == "cuda":
            on, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
        elif kind == "cpu":
            on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        else:
            on, dtype = False, x.dtype
    return dtype if on else x.dtype


def _f32(t: torch.Tensor) -> torch.Tensor:
    """float32 for the SSM parameters and step sizes, but keep float64 (for gradcheck)."""
    return t if t.dtype == torch.float64 else t.float()


def _channel_major(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight @ x`` per batch row: ``(M, K) @ (b, K, L) -> (b, M, L)``.

    A batched GEMM with the weight broadcast over the batch (stride 0), so
    neither ``x`` (contiguous or a transposed view) nor the result is ever
    copied; ``torch.matmul`` would fold ``x.mT`` into a 2-D matrix, a copy of
    ``x`` forward and of its gradient backward.
    """
    return torch.bmm(weight.expand(x.shape[0], -1, -1), x)  # (b M L)


def selective_ssm(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    gaps: torch.Tensor | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    backend: str = "auto",
    return_last_state: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Mamba's selective SSM with step sizes scaled by observed time gaps.

    With :math:`\Delta_t = \mathrm{softplus}(dt_t + dt_{bias})\, g_t`, where
    :math:`g_t` is the gap between samples ``t-1`` and ``t`` in units of the
    nominal step (1 on a regular grid),

    .. math::

        h_t = e^{\Delta_t A} h_{t-1} + \Delta_t B_t u_t, \qquad
        y_t = C_t h_t + D u_t \;(\odot\, \mathrm{silu}(z_t)).

    The state decays over the time actually elapsed, so a missing sample
    advances the state as time passes. A zero gap leaves the state untouched
    (this is how left-padded positions are made inert). The input matrix is
    discretized as :math:`\Delta B` (Euler), not by the exact zero-order hold
    :math:`A^{-1}(e^{\Delta A} - I) B`; the two agree to
    :math:`O(\Delta^2)` per step (relative :math:`O(\Delta A)`), see the notes
    of :class:`MambaBlock`.

    Parameters
    ----------
    u, dt : torch.Tensor
        ``(b, E, L)`` input and raw (pre-softplus) step size.
    A : torch.Tensor
        ``(E, N)`` real, negative.
    B, C : torch.Tensor
        ``(b, N, L)`` input-dependent, or ``(E, N)`` time-invariant.
    D, dt_bias : torch.Tensor, optional
        ``(E,)``.
    z : torch.Tensor, optional
        ``(b, E, L)`` gate.
    gaps : torch.Tensor, optional
        ``(b, L)`` non-negative time intervals; None means a regular grid.
    initial_state : torch.Tensor, optional
        ``(b, E, N)`` float32.
    backend : str, optional
        Passed to :func:`sciamba.kernels.selective_scan`.
    return_last_state : bool, optional
        Compute the final state (None is returned in its place otherwise).

    Returns
    -------
    y : torch.Tensor
        ``(b, E, L)`` in ``u``'s dtype.
    last_state : torch.Tensor or None
        ``(b, E, N)`` float32; None without ``return_last_state``.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn._mamba import selective_ssm
    >>> u, dt = torch.randn(1, 3, 6), torch.randn(1, 3, 6)
    >>> A, B, C = -torch.rand(3, 2) - 0.5, torch.randn(1, 2, 6), torch.randn(1, 2, 6)
    >>> y, h = selective_ssm(u, dt, A, B, C, gaps=torch.ones(1, 6), backend="torch")
    >>> y2, h2 = selective_ssm(u, dt, A, B, C, backend="torch")
    >>> torch.allclose(y, y2, atol=1e-6)
    True
    """
    if gaps is None:
        # Regular grid: the kernel fuses bias and softplus.
        out = kernels.selective_scan(
            u, dt, A, B, C, D, z, delta_bias=dt_bias, delta_softplus=True,
            return_last_state=return_last_state, initial_state=initial_state, backend=backend,
        )
    else:
        # The gap multiplies Δ after the softplus, so bias and softplus cannot be fused into the scan.
        delta = discretize_delta(_f32(dt), None if dt_bias is None else _f32(dt_bias), True, gaps)  # (b E L)
        out = kernels.selective_scan(
            u, delta.to(u.dtype), A, B, C, D, z, delta_softplus=False,
            return_last_state=return_last_state, initial_state=initial_state, backend=backend,
        )
    return out if return_last_state else (out, None)


@dataclass
class MambaBlockState:
    """Recurrent state of one :class:`MambaBlock`.

    Attributes
    ----------
    conv : torch.Tensor
        ``(b, E, d_conv - 1)``: the last convolution inputs.
    ssm : torch.Tensor
        ``(b, E, N)`` float32: the SSM state.
    """

    conv: torch.Tensor
    ssm: torch.Tensor


@dataclass
class MambaState:
    """Recurrent state of a :class:`Mamba` stack: one :class:`MambaBlockState` per layer.

    Its size does not depend on how many positions were processed.
    """

    layers: list[MambaBlockState]

    def nbytes(self) -> int:
        """Memory held by the state, in bytes."""
        return sum(
            t.numel() * t.element_size() for s in self.layers for t in (s.conv, s.ssm)
        )


def _check_step_input(x_t: object, d_model: int) -> None:
    """Raise unless ``x_t`` is one position ``(batch, d_model)`` (shared by both ``step`` methods)."""
    if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2 or x_t.shape[-1] != d_model:
        raise ValueError(
            f"step expects x_t of shape (batch, d_model={d_model}), got "
            f"{tuple(getattr(x_t, 'shape', ()))}"
        )


def _inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    # softplus(y) = x  <=>  y = x + log(1 - exp(-x)), stable via expm1.
    return x + torch.log(-torch.expm1(-x))


class MambaBlock(nn.Module):
    r"""The Mamba mixer block of Gu & Dao (2023), ``(b, L, d) -> (b, L, d)``.

    .. math::

        (x, z) &= W_{in}\, u, \qquad x \leftarrow \mathrm{silu}(\mathrm{conv1d}(x)),\\
        (\delta, B, C) &= W_x\, x, \qquad \Delta = \mathrm{softplus}(W_\Delta \delta + b_\Delta),\\
        y &= \mathrm{SSM}_{\Delta, A, B, C, D}(x) \odot \mathrm{silu}(z), \qquad
        \text{out} = W_{out}\, y,

    with the causal depthwise convolution of width ``d_conv``, diagonal
    :math:`A = -\exp(A_{\log})` and the selective scan of
    :func:`sciamba.kernels.selective_scan`.

    Parameters
    ----------
    d_model : int
        Input and output width ``d``.
    d_state : int, optional
        SSM state size ``N`` per channel (16).
    d_conv : int, optional
        Width of the causal depthwise convolution (4).
    expand : int, optional
        Inner width ``E = expand * d_model`` (2).
    dt_rank : int or "auto", optional
        Rank ``R`` of the step-size projection; "auto" is ``ceil(d_model / 16)``.
    dt_min, dt_max : float, optional
        Range of the initial step sizes, drawn log-uniformly (1e-3, 0.1).
    dt_init_floor : float, optional
        Lower clamp of the initial step sizes (1e-4).
    conv_bias : bool, optional
        Bias in the convolution (True).
    bias : bool, optional
        Biases in the input and output projections (False).
    dt_scale : float, optional
        Scale of the uniform initialization of :math:`W_\Delta` (1.0).
    backend : {"auto", "torch", "triton"}, optional
        Selective scan backend; "auto" is Triton on CUDA tensors, PyTorch otherwise.

    Notes
    -----
    Initialization follows the reference implementation: :math:`W_\Delta
    \sim U(\pm R^{-1/2})`; :math:`b_\Delta = \mathrm{softplus}^{-1}(\Delta_0)`
    with :math:`\Delta_0` log-uniform in ``[dt_min, dt_max]`` (so the initial
    step sizes are exactly those); S4D-real :math:`A_{\log}[e, n] = \log(n+1)`,
    i.e. :math:`A = -(1, 2, \dots, N)` for every channel; :math:`D = 1`.

    *Irregular time.* ``gaps`` ``(b, L)`` multiplies each step size:
    :math:`\Delta_t \to g_t \Delta_t`. A gap of 0 marks a padded position: the
    block zeroes the convolution input and its own output there, and the state
    does not move, so a series left-padded with zero gaps (and zero input)
    gives exactly the outputs of the unpadded series at its real positions.
    Observations that share a time stamp should use a small positive gap.

    *Discretization.* Mamba discretizes :math:`\bar A = e^{\Delta A}`
    exactly but :math:`\bar B = \Delta B` (Euler), where the exact
    zero-order hold is :math:`\bar B = A^{-1}(e^{\Delta A} - I) B =
    \Delta B (1 + \Delta A / 2 + O(\Delta^2))`. Per step the difference is
    :math:`O(\Delta^2)`; summed over a fixed physical time span
    (:math:`\propto 1/\Delta` steps) the output differs by a relative
    :math:`O(\Delta |A|)`. With input-independent :math:`\Delta, B, C` the
    block converges to the exact ZOH system of :class:`sciamba.ssm.LTISSM` as
    :math:`\Delta \to 0` (tested).

    *Training.* With the Triton backend, no state and a gradient needed
    (gaps and padding included), the block runs as one autograd node whose backward is
    written out (``sciamba/nn/_mamba_inner.py``, after mamba_ssm's
    ``mamba_inner_fn``): the same values and gradients as the chain of ops
    below it (tested in float64), fewer host calls, no transposed copies, and
    the scan's output recomputed in the backward instead of kept.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023.
    .. [2] state-spaces/mamba, ``mamba_ssm/modules/mamba_simple.py`` and
           ``mamba_ssm/ops/selective_scan_interface.py`` (``mamba_inner_fn``).

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import MambaBlock
    >>> block = MambaBlock(16, d_state=4)
    >>> x = torch.randn(2, 11, 16)
    >>> block(x).shape
    torch.Size([2, 11, 16])
    >>> y, state = block(x[:, :6], return_state=True)
    >>> y2, _ = block(x[:, 6:], state=state, return_state=True)
    >>> torch.allclose(torch.cat([y, y2], 1), block(x), atol=1e-5)
    True
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        *,
        dt_scale: float = 1.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        d_model = check_positive_int("d_model", d_model)
        d_state = check_positive_int("d_state", d_state)
        d_conv = check_positive_int("d_conv", d_conv)
        expand = check_positive_int("expand", expand)
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        dt_rank = check_positive_int("dt_rank", dt_rank)
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
        if not dt_init_floor > 0:
            raise ValueError(f"dt_init_floor must be > 0, got {dt_init_floor!r}")
        if backend not in ("auto", "torch", "triton"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = E = expand * d_model
        self.dt_rank = dt_rank
        self.backend = backend

        self.in_proj = nn.Linear(d_model, 2 * E, bias=bias)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, bias=conv_bias)
        self.x_proj = nn.Linear(E, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, E, bias=True)
        self.out_proj = nn.Linear(E, d_model, bias=bias)

        bound = dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        log_dt = torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (E,)
        dt0 = torch.exp(log_dt).clamp(min=dt_init_floor)  # (E,)
        with torch.no_grad():
            self.dt_proj.bias.copy_(_inverse_softplus(dt0))
        # S4D-Real: A = -(1, 2, ..., N) in every channel, stored as log(-A).
        minus_A = -torch.as_tensor(s4d_init("real", d_state)[0].real, dtype=torch.float32)  # (N,)
        self.A_log = nn.Parameter(torch.log(minus_A).repeat(E, 1))  # (E N)
        self.D = nn.Parameter(torch.ones(E))  # (E,)
        # Optimizers built by sciamba skip weight decay on these (as the reference does).
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        gaps: torch.Tensor | None = None,
        *,
        state: MambaBlockState | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, MambaBlockState]:
        """Mix ``x`` ``(b, L, d_model)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(b, L, d_model)``.
        gaps : torch.Tensor, optional
            ``(b, L)`` time intervals scaling the step sizes; 0 marks padding.
        state : MambaBlockState, optional
            Continue from this state (``x`` follows the sequence it summarizes).
        return_state : bool, optional
            Also return the state after the last position.
        """
        check_sequence(x, self.d_model, "MambaBlock")
        gaps = check_gaps(gaps, x, "MambaBlock")
        pad = None if gaps is None else gaps == 0
        y, new_state = self._mix(x, gaps, pad, state, need_state=return_state)
        return (y, new_state) if return_state else y

    def _mix(
        self,
        x: torch.Tensor,
        scale: torch.Tensor | None,
        pad: torch.Tensor | None,
        state: MambaBlockState | None,
        need_state: bool = True,
    ) -> tuple[torch.Tensor, MambaBlockState | None]:
        b, L, _ = x.shape
        E, N, R, k = self.d_inner, self.d_state, self.dt_rank, self.d_conv
        if state is not None:
            self._check_state(state, b)
        dtype = _matmul_dtype(x)
        if (FUSED_TRAINING and state is None and not need_state and torch.is_grad_enabled()
                and (scale is None or not scale.requires_grad)
                and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
                and resolve_backend(self.backend, x.device) == "triton"):
            # Training: the same math as below as one autograd node (host time; see _mamba_inner).
            return mamba_inner(self, x, dtype, scale, pad), None
        # Channel-major products, (E, d) @ (b, d, L): x and z come out as contiguous
        # (b E L), the layout of the convolution and the scan, with no transposed copies.
        # x and the input weight are cast once (autocast would cast them for each of the
        # two products) and the weight split, not sliced twice: every cast, slice and
        # their backward nodes cost host time that a short training step waits for.
        xT = x.transpose(1, 2).to(dtype)  # (b d L), a view unless cast
        w_x, w_z = self.in_proj.weight.to(dtype).split(E)  # (E d), (E d)
        xi = _channel_major(w_x, xT)  # (b E L)
        z = _channel_major(w_z, xT)  # (b E L)
        b_in = self.in_proj.bias
        if b_in is not None:  # added in the products' dtype (a float32 bias would promote x and z)
            b_in = b_in.to(dtype)
            xi, z = xi + b_in[:E, None], z + b_in[E:, None]
        if pad is not None:
            xi = xi.masked_fill(pad[:, None, :], 0.0)  # padded conv inputs = the conv's zero padding
        w_conv = self.conv1d.weight[:, 0, :]  # (E k)
        if state is None:
            # Zero history: the kernel pads, rather than copying x into a longer buffer.
            h0 = None
            conv_state = F.pad(xi[:, :, max(0, L - (k - 1)) :], (max(0, k - 1 - L), 0)) if need_state else None
        else:
            prev = state.conv.to(xi.dtype)  # (b E k-1): the last inputs before this chunk
            h0 = prev if k > 1 else None
            conv_state = torch.cat([prev, xi], dim=-1)[:, :, L:] if need_state else None  # (b E k-1)
        # Causal depthwise conv + SiLU in one pass (a Triton kernel on CUDA).
        u = kernels.causal_conv1d(xi, w_conv, self.conv1d.bias, "silu", initial_state=h0,
                                  backend=self.backend)  # (b E L)
        # Also channel-major: (R+2N, E) @ (b E L). nn.Linear on u.transpose(1, 2) would fold
        # the transposed view into 2-D, i.e. copy u forward and its gradient backward.
        x_dbl = _channel_major(self.x_proj.weight, u)  # (b R+2N L)
        dt, Bm, Cm = torch.split(x_dbl, [R, N, N], dim=1)  # (b R L), (b N L), (b N L)
        dt = _channel_major(self.dt_proj.weight, dt)  # (b E L)
        A = -torch.exp(_f32(self.A_log))  # (E N)
        y, ssm_state = selective_ssm(
            u,
            dt,
            A,
            Bm,  # (b N L)
            Cm,  # (b N L)
            _f32(self.D),
            z,  # (b E L)
            _f32(self.dt_proj.bias),
            scale,
            initial_state=None if state is None else state.ssm,
            backend=self.backend,
            return_last_state=need_state,
        )  # (b E L), (b E N) or None
        out = _channel_major(self.out_proj.weight, y)  # (b d L), again no transposed copy of y
        if self.out_proj.bias is not None:
            out = out + self.out_proj.bias.to(out.dtype)[:, None]
        out = out.transpose(1, 2)  # (b L d), a view
        if pad is not None:
            out = out.masked_fill(pad[..., None], 0.0)
        if not need_state:
            return out, None
        # Contiguous, so that step() can update them in place through the Triton kernels
        # (the conv state is a slice of the padded input, the torch scan's a view).
        return out, MambaBlockState(conv=conv_state.contiguous(), ssm=ssm_state.contiguous())

    # ---------------------------------------------------------------- streaming
    def allocate_state(
        self, batch: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MambaBlockState:
        """A zero state for ``batch`` sequences: ``(b, E, d_conv-1)`` and ``(b, E, N)`` float32."""
        batch = check_positive_int("batch", batch)
        p = self.in_proj.weight
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        return MambaBlockState(
            conv=torch.zeros(batch, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=_f32(p).dtype),
        )

    def _check_state(self, state: MambaBlockState, batch: int) -> None:
        if not isinstance(state, MambaBlockState):
            raise TypeError(f"state must be a MambaBlockState, got {type(state).__name__}")
        want_conv = (batch, self.d_inner, self.d_conv - 1)
        want_ssm = (batch, self.d_inner, self.d_state)
        if tuple(state.conv.shape) != want_conv or tuple(state.ssm.shape) != want_ssm:
            raise ValueError(
                f"state shapes conv {tuple(state.conv.shape)}, ssm {tuple(state.ssm.shape)} do not "
                f"match this block and batch: expected {want_conv} and {want_ssm}; "
                "use allocate_state(batch)"
            )

    def step(
        self, x_t: torch.Tensor, state: MambaBlockState, gap: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MambaBlockState]:
        """One position ``x_t`` ``(b, d_model)``: O(1) time and memory.

        The state is updated in place (and returned). ``gap`` ``(b,)`` scales
        the step size as ``gaps`` does in :meth:`forward`.
        """
        _check_step_input(x_t, self.d_model)
        self._check_state(state, x_t.shape[0])
        gap = check_step_gap(gap, x_t, "MambaBlock.step")  # (b,)
        pad = None if gap is None else gap == 0
        return self._step(x_t, gap, pad, state)

    def _step(
        self,
        x_t: torch.Tensor,
        scale: torch.Tensor | None,
        pad: torch.Tensor | None,
        state: MambaBlockState,
    ) -> tuple[torch.Tensor, MambaBlockState]:
        N, R = self.d_state, self.dt_rank
        xi, z = self.in_proj(x_t).chunk(2, dim=-1)  # (b E), (b E)
        if pad is not None:
            xi = xi.masked_fill(pad[:, None], 0.0)
        # The conv window shifted in place, its product, bias and SiLU: one kernel on CUDA.
        u = kernels.causal_conv1d_update(xi, state.conv, self.conv1d.weight, self.conv1d.bias, "silu",
                                         backend=self.backend)  # (b E), xi's dtype
        dt, Bm, Cm = torch.split(self.x_proj(u), [R, N, N], dim=-1)  # (b R), (b N), (b N)
        dt = F.linear(dt, self.dt_proj.weight)  # (b E)
        # The state update takes one activation dtype; u has xi's, and dt and z come from
        # products that autocast may run in another (no-ops when they agree).
        dt, z = dt.to(u.dtype), z.to(u.dtype)
        A = -torch.exp(_f32(self.A_log))  # (E N)
        if scale is None:
            y = kernels.selective_state_update(
                state.ssm, u, dt, A, Bm, Cm, _f32(self.D), z,
                dt_bias=_f32(self.dt_proj.bias), dt_softplus=True, backend=self.backend,
            )  # (b E)
        else:
            delta = discretize_delta(_f32(dt), _f32(self.dt_proj.bias), True, scale)  # (b E)
            y = kernels.selective_state_update(
                state.ssm, u, delta.to(u.dtype), A, Bm, Cm, _f32(self.D), z, dt_softplus=False,
                backend=self.backend,
            )  # (b E)
        out = self.out_proj(y)  # (b d)
        if pad is not None:
            out = out.masked_fill(pad[:, None], 0.0)
        return out, state

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, "
            f"expand={self.expand}, dt_rank={self.dt_rank}, backend={self.backend!r}"
        )


def _reverse_gaps(gaps: torch.Tensor) -> torch.Tensor:
    """Gaps seen by a scan over the reversed sequence, in reversed order.

    Going backwards, the step into position ``t`` comes from ``t + 1`` and
    spans ``gaps[t + 1]``; the first reversed step (the last position) keeps
    its own gap.
    """
    shifted = torch.cat([gaps[:, 1:], gaps[:, -1:]], dim=1)  # (b L)
    return shifted.flip(1)


class _Layer(nn.Module):
    """Pre-norm residual layer: h + dropout(mixer(norm(h)) (+ reversed mixer)).

    :class:`Mamba` runs the norm itself, fused with the previous layer's
    residual add; the layer contributes its branch on the normalized input.
    """

    def __init__(self, d_model: int, norm_eps: float, bidirectional: bool, dropout: float, block_kw: dict):
        super().__init__()
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.mixer = MambaBlock(d_model, **block_kw)
        self.mixer_rev = MambaBlock(d_model, **block_kw) if bidirectional else None
        self.dropout = nn.Dropout(dropout)

    def branch(self, hn, gaps, pad, state, need_state=True):
        """``dropout(mixer(hn) (+ reversed mixer))`` and the mixer's new state."""
        y, new_state = self.mixer._mix(hn, gaps, pad, state, need_state)  # (b L d)
        if self.mixer_rev is not None:
            yr, _ = self.mixer_rev._mix(
                hn.flip(1),
                None if gaps is None else _reverse_gaps(gaps),
                None if pad is None else pad.flip(1),
                None,
                need_state=False,
            )  # (b L d), reversed
            y = y + yr.flip(1)
        return self.dropout(y), new_state


class Mamba(nn.Module):
    """A stack of Mamba blocks: pre-norm residual layers with a final RMSNorm.

    ``h <- h + MambaBlock(RMSNorm(h))`` for each layer, then ``RMSNorm(h)``;
    ``(batch, L, d_model) -> (batch, L, d_model)``. Each residual add runs
    in one pass with the next norm (:func:`sciamba.kernels.rms_norm` with
    ``residual=``), whose output comes in the dtype of the next block's
    products (bfloat16 under autocast); the residual stream keeps the
    input's dtype.

    Parameters
    ----------
    d_model : int
        Model width.
    n_layers : int
        Number of residual layers.
    d_state, d_conv, expand, dt_rank, dt_min, dt_max, dt_init_floor, conv_bias, bias
        Passed to every :class:`MambaBlock`.
    bidirectional : bool, optional
        Each layer also runs a second block (own parameters) over the reversed
        sequence and sums the two outputs: for non-causal tasks such as
        classification. A bidirectional stack cannot :meth:`step`.
    dropout : float, optional
        Dropout on each residual branch.
    norm_eps : float, optional
        RMSNorm epsilon.
    backend : {"auto", "torch", "triton"}, optional
        Selective scan backend.

    Attributes
    ----------
    supports_gaps : bool
        True: ``forward(x, gaps)`` scales the step sizes by the gaps.

    Notes
    -----
    The output projections are scaled by :math:`1/\\sqrt{n_{layers}}` at
    initialization (GPT-2 style, as in the reference ``MambaLMHeadModel``), so
    the residual stream does not grow with depth.

    *Streaming.* :meth:`allocate_state` and :meth:`step` process one position
    at a time in O(1) time and memory (a convolution window and an SSM state
    per layer); ``forward(x, state=..., return_state=True)`` processes a chunk
    from a state, so a recording split into chunks gives the same output as
    one pass, in memory bounded by the chunk.

    *Padding.* Left-padding a series with ``k`` positions of zero input and
    zero gap leaves the outputs at the real positions unchanged (the padded
    positions stay exactly zero in the residual stream); this is how series of
    unequal lengths are batched. Also true for a bidirectional stack.

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with
           Selective State Spaces", arXiv:2312.00752, 2023.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import Mamba
    >>> net = Mamba(16, 2, d_state=4).eval()
    >>> x = torch.randn(2, 9, 16)
    >>> y = net(x)
    >>> state = net.allocate_state(2)
    >>> steps = [net.step(x[:, t], state)[0] for t in range(9)]
    >>> torch.allclose(torch.stack(steps, 1), y, atol=1e-5)
    True
    """

    supports_gaps = True

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        *,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        bidirectional: bool = False,
        dropout: float = 0.0,
        norm_eps: float = 1e-5,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.n_layers = check_positive_int("n_layers", n_layers)
        check_dropout(dropout)
        self.bidirectional = bool(bidirectional)
        block_kw = dict(
            d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, dt_min=dt_min,
            dt_max=dt_max, dt_init_floor=dt_init_floor, conv_bias=conv_bias, bias=bias,
            backend=backend,
        )
        self.layers = nn.ModuleList(
            _Layer(d_model, norm_eps, self.bidirectional, dropout, block_kw) for _ in range(n_layers)
        )
        self.norm_f = RMSNorm(d_model, eps=norm_eps)
        with torch.no_grad():
            for block in self.blocks():
                block.out_proj.weight /= math.sqrt(n_layers)

    @property
    def backend(self) -> str:
        return self.layers[0].mixer.backend

    def blocks(self) -> list[MambaBlock]:
        """Every :class:`MambaBlock` of the stack (both directions)."""
        out = []
        for layer in self.layers:
            out.append(layer.mixer)
            if layer.mixer_rev is not None:
                out.append(layer.mixer_rev)
        return out

    def forward(
        self,
        x: torch.Tensor,
        gaps: torch.Tensor | None = None,
        *,
        state: MambaState | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, MambaState]:
        """Encode ``x`` ``(batch, L, d_model)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, L, d_model)``.
        gaps : torch.Tensor, optional
            ``(batch, L)`` observed time intervals in units of the nominal
            step (1 = regular); 0 marks a padded position.
        state : MambaState, optional
            Continue from this state (causal stacks only).
        return_state : bool, optional
            Also return the state after the last position (causal stacks only).
        """
        check_sequence(x, self.d_model, "Mamba")
        gaps = check_gaps(gaps, x, "Mamba")
        if (state is not None or return_state) and self.bidirectional:
            raise ValueError(
                "a bidirectional Mamba looks at the future, so it has no recurrent state; "
                "build it with bidirectional=False to stream or chunk"
            )
        if state is not None:
            self._check_state(state)
        pad = None if gaps is None else gaps == 0
        # Each layer's residual add is fused with the next norm (h <- h + y, norm(h) in one
        # pass), and the norms feeding the blocks emit the dtype of the blocks' products.
        dtype = _matmul_dtype(x)
        h = x  # (b L d), the residual stream
        hn = self.layers[0].norm(h, out_dtype=dtype)  # (b L d)
        new_layers = []
        for i, layer in enumerate(self.layers):
            y, s = layer.branch(hn, gaps, pad, None if state is None else state.layers[i], return_state)
            new_layers.append(s)
            last = i + 1 == len(self.layers)
            norm = self.norm_f if last else self.layers[i + 1].norm
            hn, h = norm(y, residual=h, out_dtype=None if last else dtype)  # (b L d), (b L d)
        return (hn, MambaState(new_layers)) if return_state else hn

    def _check_state(self, state: MambaState) -> None:
        if not isinstance(state, MambaState) or len(state.layers) != self.n_layers:
            raise ValueError(f"state must be a MambaState with {self.n_layers} layers; use allocate_state")

    def allocate_state(
        self, batch: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MambaState:
        """A zero state for ``batch`` sequences (causal stacks only)."""
        if self.bidirectional:
            raise ValueError("a bidirectional Mamba cannot stream; build it with bidirectional=False")
        return MambaState([layer.mixer.allocate_state(batch, device=device, dtype=dtype) for layer in self.layers])

    def step(
        self, x_t: torch.Tensor, state: MambaState, gap: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MambaState]:
        """One position ``x_t`` ``(batch, d_model)`` -> ``(y_t, state)``, O(1) time and memory.

        The state is updated in place and returned. ``gap`` ``(batch,)`` is
        the time since the previous position (see :meth:`forward`).

        With the Triton backend, float32 weights, input and gap, no autocast,
        no gradient recorded and no dropout, each layer's step runs as three
        fused kernels whose launches are bound once per model, batch and
        state (``sciamba.nn._mamba_step``; on an H100 a 4-layer
        ``Mamba(256)`` step took 36-99 us of GPU time at batch 1-64, against
        82-225 us layer by layer, and 0.2-0.35 ms as run against 2-4 ms);
        otherwise op by op. Both compute the same step, to float32 rounding.
        """
        if self.bidirectional:
            raise ValueError("a bidirectional Mamba cannot stream; build it with bidirectional=False")
        self._check_state(state)
        _check_step_input(x_t, self.d_model)
        for layer, s in zip(self.layers, state.layers):
            layer.mixer._check_state(s, x_t.shape[0])
        gap = check_step_gap(gap, x_t, "Mamba.step")  # (b,)
        return self._step(x_t, gap, state), state

    def _step(self, x_t: torch.Tensor, gap: torch.Tensor | None, state: MambaState) -> torch.Tensor:
        """The step's arithmetic on checked inputs: no host synchronization (CUDA-graph capturable)."""
        if fused_step_applies(self, x_t, gap, state):
            return stack_step(self, x_t, gap, state)  # three launches a layer (see _mamba_step)
        pad = None if gap is None else gap == 0
        h = x_t  # (b d), the residual stream
        hn = self.layers[0].norm(h)
        for i, layer in enumerate(self.layers):
            y, _ = layer.mixer._step(hn, gap, pad, state.layers[i])
            # h <- h + y and the next norm in one pass, as in forward
            norm = self.norm_f if i + 1 == len(self.layers) else self.layers[i + 1].norm
            hn, h = norm(layer.dropout(y), residual=h)  # (b d), (b d)
        return hn
