"""S4D: a diagonal linear time-invariant SSM layer and its residual stack.

The math comes from :mod:`sciamba.ssm` (initialization, zero-order-hold
discretization, FFT convolution); this module only parameterizes and stacks it.
Shapes: ``b`` batch, ``H`` channels (= d_model), ``n`` diagonal modes, ``L`` length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sciamba.ssm import causal_fft_conv, discretize_diagonal, s4d_init

from ._checks import check_dropout, check_positive_int, check_sequence, reject_gaps
from ._norm import RMSNorm

__all__ = ["S4DKernel", "S4DLayer", "S4D"]


class S4DKernel(nn.Module):
    r"""Impulse response of ``H`` independent diagonal SSMs (S4D).

    For channel ``h`` with modes :math:`A_{hn}`, step :math:`\Delta_h` and
    output weights :math:`C_{hn}`, the ZOH-discretized kernel is

    .. math::

        K_h[l] = c \, \mathrm{Re} \sum_n C_{hn} \bar B_{hn} \bar A_{hn}^{\,l},
        \qquad \bar A = e^{\Delta A}, \quad \bar B = A^{-1}(e^{\Delta A} - 1) B,

    with :math:`c = 2` for complex modes (each stands for a conjugate pair) and
    1 for S4D-Real. :math:`(A, B)` come from :func:`sciamba.ssm.s4d_init`,
    :math:`(\bar A, \bar B)` from :func:`sciamba.ssm.discretize_diagonal`.

    Parameters
    ----------
    d_model : int
        Number of channels ``H``.
    d_state : int, optional
        Real state size per channel: ``d_state // 2`` complex modes for
        "lin"/"inv", ``d_state`` real modes for "real".
    init : {"lin", "inv", "real"}, optional
        S4D initialization of :math:`A` (default S4D-Lin).
    dt_min, dt_max : float, optional
        Range of the log-uniform initial steps.

    Examples
    --------
    >>> from sciamba.nn._s4d import S4DKernel
    >>> S4DKernel(3, d_state=8)(50).shape
    torch.Size([3, 50])
    """

    def __init__(
        self, d_model: int, d_state: int = 64, init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1
    ) -> None:
        super().__init__()
        H = check_positive_int("d_model", d_model)
        d_state = check_positive_int("d_state", d_state)
        if init not in ("lin", "inv", "real"):
            raise ValueError(f"init must be 'lin', 'inv' or 'real', got {init!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min!r}, {dt_max!r}")
        complex_modes = init != "real"
        n = max(1, d_state // 2) if complex_modes else d_state
        self.init, self.scale = init, 2.0 if complex_modes else 1.0
        A, B = s4d_init(init, n)  # (n,) complex128 each
        A = torch.as_tensor(A, dtype=torch.complex64)
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H,)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.log(-A.real).repeat(H, 1))  # (H n)
        self.A_imag = nn.Parameter(A.imag.repeat(H, 1))  # (H n)
        self.register_buffer("B", torch.as_tensor(B, dtype=torch.complex64), persistent=False)  # (n,)
        C = torch.randn(H, n, dtype=torch.complex64 if complex_modes else torch.float32)  # (H n)
        self.C = nn.Parameter(torch.view_as_real(C) if complex_modes else C)
        for p in (self.log_dt, self.log_A_real, self.A_imag):
            p._no_weight_decay = True

    def forward(self, L: int) -> torch.Tensor:
        """The kernel ``(H, L)`` float32."""
        dt = torch.exp(self.log_dt)[:, None]  # (H 1)
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # (H n)
        Ad, Bd = discretize_diagonal(A, self.B, dt)  # (H n), (H n)
        C = torch.view_as_complex(self.C) if self.C.dim() == 3 else self.C.to(torch.complex64)  # (H n)
        l = torch.arange(L, device=A.device, dtype=torch.float32)  # (L,)
        # Ad^l as exp(l log Ad): one exponential per (h, n, l), exact for integer l.
        powers = torch.exp(torch.log(Ad)[:, :, None] * l)  # (H n L)
        K = torch.einsum("hn,hnl->hl", C * Bd, powers)  # (H L)
        return self.scale * K.real


class S4DLayer(nn.Module):
    """One S4D mixer: ``y = GLU(W (GELU(K * u + D u)))``, ``(b, L, H) -> (b, L, H)``.

    Parameters
    ----------
    d_model : int
        Channels ``H``.
    d_state, init, dt_min, dt_max
        Passed to :class:`S4DKernel`.
    bidirectional : bool, optional
        Add a second kernel applied to the reversed sequence (non-causal).

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn._s4d import S4DLayer
    >>> S4DLayer(4, d_state=8)(torch.randn(2, 7, 4)).shape
    torch.Size([2, 7, 4])
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.kernel = S4DKernel(d_model, d_state, init, dt_min, dt_max)
        self.kernel_rev = S4DKernel(d_model, d_state, init, dt_min, dt_max) if bidirectional else None
        self.D = nn.Parameter(torch.randn(d_model))  # (H,)
        self.output_linear = nn.Linear(d_model, 2 * d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]
        u = x.transpose(1, 2).float()  # (b H L); FFTs in float32 whatever autocast says
        y = causal_fft_conv(u, self.kernel(L))  # (b H L)
        if self.kernel_rev is not None:
            y = y + causal_fft_conv(u.flip(-1), self.kernel_rev(L)).flip(-1)  # (b H L)
        y = F.gelu(y + self.D[:, None] * u).transpose(1, 2)  # (b L H)
        return F.glu(self.output_linear(y), dim=-1).to(x.dtype)  # (b L H)


class S4D(nn.Module):
    """A stack of S4D layers: pre-norm residual layers with a final RMSNorm.

    The linear time-invariant baseline for :class:`Mamba`: same residual
    structure and norm, the mixer replaced by :class:`S4DLayer` (FFT
    convolution with a ZOH-discretized diagonal SSM kernel, O(L log L)).
    ``(batch, L, d_model) -> (batch, L, d_model)``.

    Parameters
    ----------
    d_model : int
        Model width.
    n_layers : int
        Number of residual layers.
    d_state : int, optional
        Real state size per channel (64, as in S4D).
    init : {"lin", "inv", "real"}, optional
        S4D initialization.
    dt_min, dt_max : float, optional
        Range of the initial steps.
    bidirectional : bool, optional
        A second kernel per layer over the reversed sequence.
    dropout : float, optional
        Dropout on each residual branch.

    Attributes
    ----------
    supports_gaps : bool
        False: the kernel is time-invariant, so irregular gaps are not
        modelled and ``gaps`` raises ValueError.

    References
    ----------
    .. [1] A. Gu, A. Gupta, K. Goel, C. Ré, "On the Parameterization and
           Initialization of Diagonal State Space Models", NeurIPS 2022.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import S4D
    >>> S4D(8, 2, d_state=16)(torch.randn(2, 30, 8)).shape
    torch.Size([2, 30, 8])
    """

    supports_gaps = False

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        *,
        d_state: int = 64,
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.n_layers = check_positive_int("n_layers", n_layers)
        check_dropout(dropout)
        self.bidirectional = bool(bidirectional)
        self.norms = nn.ModuleList(RMSNorm(d_model, eps=norm_eps) for _ in range(n_layers))
        self.layers = nn.ModuleList(
            S4DLayer(d_model, d_state, init, dt_min, dt_max, self.bidirectional) for _ in range(n_layers)
        )
        self.norm_f = RMSNorm(d_model, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, gaps: torch.Tensor | None = None) -> torch.Tensor:
        reject_gaps(gaps, "S4D")
        check_sequence(x, self.d_model, "S4D")
        h = x
        for norm, layer in zip(self.norms, self.layers):
            h = h + self.dropout(layer(norm(h)))  # (b L d)
        return self.norm_f(h)
