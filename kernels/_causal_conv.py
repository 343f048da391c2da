"""Public ``causal_conv1d`` (and its one-step form ``causal_conv1d_update``): the short causal
depthwise convolution of the Mamba block.

Validation and dispatch live here; the PyTorch path is :func:`causal_conv1d_torch`
and the Triton kernels are in ``_triton_conv``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._backends import resolve_backend
from ._interface import INPUT_DTYPES, _as, _check_device, _check_tensor
from ._math import compute_dtype

__all__ = ["ACTIVATIONS", "causal_conv1d", "causal_conv1d_torch", "causal_conv1d_update",
           "causal_conv1d_update_torch", "validate_conv_inputs"]

#: Accepted ``activation=`` values; "swish" is SiLU's other name (mamba_ssm accepts both).
ACTIVATIONS = (None, "silu", "swish")


class ConvInputs(NamedTuple):
    """Validated inputs: ``x`` untouched (any strides), the rest normalized.

    ``weight`` is ``(dim, K)`` and ``bias`` ``(dim,)``, both contiguous in the
    compute dtype (float32, or float64 for float64 ``x``); ``initial_state``
    ``(batch, dim, K - 1)`` in the compute dtype; ``silu`` a bool.
    """

    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    initial_state: torch.Tensor | None
    silu: bool


def validate_conv_inputs(x, weight, bias=None, activation=None, initial_state=None) -> ConvInputs:
    """Check shapes, dtypes, devices and ``activation``; normalize the small tensors.

    ``weight`` may be ``(dim, K)`` or ``nn.Conv1d``'s ``(dim, 1, K)``. The
    casts to the compute dtype are ordinary differentiable ops, so gradients
    reach the caller's tensors in their own dtypes.

    Raises
    ------
    TypeError
        Non-tensor, integer or complex inputs, an unsupported ``x`` dtype, or
        a non-string ``activation``.
    ValueError
        Wrong shapes, an empty axis, inputs on several devices, or an unknown
        ``activation``.
    """
    _check_tensor("x", x, "convolutions")
    if x.dtype not in INPUT_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; supported are float32, float16, bfloat16 and float64")
    if x.dim() != 3:
        raise ValueError(
            f"x must have shape (batch, dim, L), got {tuple(x.shape)}; "
            "for channel-last data (batch, L, dim) pass x.transpose(1, 2)"
        )
    b, dim, L = x.shape
    if min(b, dim, L) == 0:
        raise ValueError(f"x has an empty axis: shape (batch, dim, L) = {tuple(x.shape)}")
    device, cdt = x.device, compute_dtype(x.dtype)
    _check_tensor("weight", weight, "convolutions")
    _check_device("weight", weight, device, "x")
    if weight.dim() == 3 and weight.shape[1] == 1:
        weight = weight[:, 0]
    if weight.dim() != 2 or weight.shape[0] != dim or weight.shape[1] == 0:
        raise ValueError(
            f"weight must have shape (dim, K) or (dim, 1, K) with dim = {dim} and K >= 1, "
            f"got {tuple(weight.shape)}"
        )
    K = weight.shape[1]
    if bias is not None:
        _check_tensor("bias", bias, "convolutions")
        _check_device("bias", bias, device, "x")
        if tuple(bias.shape) != (dim,):
            raise ValueError(f"bias must have shape (dim,) = {(dim,)}, got {tuple(bias.shape)}")
        bias = _as(bias, cdt)
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, "convolutions")
        _check_device("initial_state", initial_state, device, "x")
        if tuple(initial_state.shape) != (b, dim, K - 1):
            raise ValueError(
                f"initial_state must have shape (batch, dim, K - 1) = {(b, dim, K - 1)}, "
                f"got {tuple(initial_state.shape)}"
            )
        initial_state = _as(initial_state, cdt)
    if activation is not None and not isinstance(activation, str):
        raise TypeError(f"activation must be None or a string, got {type(activation).__name__}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose None or 'silu'")
    return ConvInputs(x, _as(weight, cdt), bias, initial_state, activation is not None)


def causal_conv1d_torch(x, weight, bias=None, initial_state=None, silu=False) -> torch.Tensor:
    """The PyTorch path: ``F.conv1d`` on the left-padded input (inputs already validated).

    Computes in the compute dtype (float32, or float64 for float64 ``x``) and
    returns a contiguous tensor in ``x``'s dtype. Arguments as in
    :func:`sciamba.kernels._triton_conv.causal_conv1d_triton`.

    Examples
    --------
    >>> import torch
    >>> from sciamba.kernels._causal_conv import causal_conv1d_torch
    >>> x = torch.tensor([[[1.0, 2.0, 3.0]]])
    >>> causal_conv1d_torch(x, torch.tensor([[1.0, 10.0]]))  # 10 x[t] + x[t-1]
    tensor([[[10., 21., 32.]]])
    """
    cdt = weight.dtype
    K = weight.shape[1]
    xc = x.to(cdt)  # (b, d, L)
    if initial_state is not None:
        xc = torch.cat([initial_state.to(cdt), xc], dim=-1)  # (b, d, K-1+L)
    else:
        xc = F.pad(xc, (K - 1, 0))  # (b, d, K-1+L)
    # Under autocast F.conv1d would run in bfloat16/float16; the sums stay in cdt, like Triton's.
    with torch.autocast(x.device.type, enabled=False):
        y = F.conv1d(xc, weight[:, None, :], bias, groups=weight.shape[0])  # (b, d, L)
        if silu:
            y = F.silu(y)
    return y.to(x.dtype).contiguous()


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Causal depthwise 1-D convolution with optional fused SiLU, differentiable.

    The short convolution of the Mamba block [1]_ (``nn.Conv1d(dim, dim, K,
    groups=dim, padding=K-1)`` then ``[..., :L]`` and SiLU), in one pass:

    .. math::

        y_{b,d,t} = \sigma\Big(\beta_d + \sum_{k=0}^{K-1} w_{d,k}\,
        \tilde x_{b,d,\,t-(K-1)+k}\Big), \qquad 0 \le t < L,

    where :math:`\tilde x` is ``x`` with ``initial_state`` (the ``K - 1``
    inputs before :math:`t = 0`; zeros when omitted) prepended along time and
    :math:`\sigma` is SiLU, :math:`\sigma(p) = p / (1 + e^{-p})`, or the
    identity. Equivalently, ``F.conv1d(cat([initial_state, x], -1),
    weight[:, None, :], bias, groups=dim)`` (then SiLU); per channel, without
    ``initial_state``, the pre-activation is the FIR filter
    ``scipy.signal.lfilter(weight[d, ::-1], 1, x[b, d]) + bias[d]``.

    Parameters
    ----------
    x : Tensor, shape ``(batch, dim, L)``
        Input, float32, float16, bfloat16 or float64, in any strides: for
        channel-last data ``u`` of shape ``(batch, L, dim)`` pass
        ``u.transpose(1, 2)``; the Triton kernels read it in place.
    weight : Tensor, shape ``(dim, K)`` or ``(dim, 1, K)``
        Per-channel taps (``nn.Conv1d(..., groups=dim).weight`` works as
        is); ``weight[:, K-1]`` multiplies the current input.
    bias : Tensor, shape ``(dim,)``, optional
        Added before the activation.
    activation : {None, "silu"}, default None
        ``"silu"`` (alias ``"swish"``) applies SiLU to the output.
    initial_state : Tensor, shape ``(batch, dim, K - 1)``, optional
        The inputs just before ``x[..., 0]``; zeros when omitted. Pass
        ``x_prev[..., -(K-1):]`` to continue over a sequence cut into pieces.
    backend : {"auto", "torch", "triton"}, default "auto"
        ``"triton"``: Triton kernels (CUDA tensors, or CPU tensors under
        ``TRITON_INTERPRET=1``), for ``K <= 16``. ``"torch"``: ``F.conv1d``,
        any device and width. ``"auto"``: Triton on CUDA (torch when
        ``K > 16``), torch otherwise; see :func:`available_backends`.


    Returns
    -------
    y : Tensor, shape ``(batch, dim, L)``
        Contiguous, in ``x``'s dtype. Differentiable in ``x``, ``weight``,
        ``bias`` and ``initial_state``.

    Raises
    ------
    TypeError
        Non-tensor, integer or complex inputs, or an unsupported ``x`` dtype.
    ValueError
        Wrong shapes, an empty axis, tensors on several devices, an unknown
        activation or backend, ``backend="triton"`` where Triton cannot run,
        or ``K > 16`` with ``backend="triton"``.

    Notes
    -----
    Sums are carried in float32 (float64 for float64 ``x``) whatever the
    input dtype; weight and bias gradients are summed over batch and time in
    that precision, deterministically (no atomics). The Triton backward pass
    recomputes the pre-activation from ``x`` instead of saving it, so a
    training step stores nothing beyond the inputs; it is differentiable once
    (``create_graph=True`` raises; the torch path is plain ``F.conv1d`` and
    supports higher derivatives).

    References
    ----------
    .. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with Selective
       State Spaces", arXiv:2312.00752, 2023.
    .. [2] T. Dao, causal-conv1d: "Causal depthwise conv1d in CUDA, with a
       PyTorch interface", https://github.com/Dao-AILab/causal-conv1d.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from sciamba.kernels import causal_conv1d
    >>> b, d, L, K = 2, 3, 10, 4
    >>> x, w, bias = torch.randn(b, d, L), torch.randn(d, K), torch.randn(d)
    >>> y = causal_conv1d(x, w, bias, activation="silu")
    >>> y.shape
    torch.Size([2, 3, 10])
    >>> ref = F.silu(F.conv1d(x, w[:, None, :], bias, padding=K - 1, groups=d)[..., :L])
    >>> torch.allclose(y, ref, atol=1e-6)
    True

    The output at time ``t`` depends only on inputs up to ``t``, so a long
    sequence can be processed in pieces, carrying the last ``K - 1`` inputs:

    >>> y1 = causal_conv1d(x[..., :6], w, bias, "silu")
    >>> y2 = causal_conv1d(x[..., 6:], w, bias, "silu", initial_state=x[..., 6 - (K - 1):6])
    >>> torch.allclose(torch.cat([y1, y2], -1), y, atol=1e-6)
    True

    Channel-last input is read through a transposed view:

    >>> u = torch.randn(b, L, d)  # (batch, L, dim)
    >>> causal_conv1d(u.transpose(1, 2), w).shape
    torch.Size([2, 3, 10])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    name = resolve_backend(backend, x.device)
    x, weight, bias, initial_state, silu = validate_conv_inputs(x, weight, bias, activation, initial_state)
    if name == "triton":
        try:
            from ._triton_conv import MAX_K, causal_conv1d_triton
        except ImportError as exc:  # triton present but broken (version, driver)
            raise RuntimeError(f"backend='triton' failed to import its kernels ({exc}); use backend='torch'") from exc
        if weight.shape[1] <= MAX_K:
            return causal_conv1d_triton(x, weight, bias, initial_state, silu)
        if backend != "auto":
            raise ValueError(
                f"backend='triton' supports kernel widths K <= {MAX_K}, got K = {weight.shape[1]}; "
                "use backend='torch'"
            )
    return causal_conv1d_torch(x, weight, bias, initial_state, silu)


def causal_conv1d_update_torch(x, conv_state, weight, bias=None, silu=False) -> torch.Tensor:
    """The PyTorch path of :func:`causal_conv1d_update` (inputs already validated).

    :func:`causal_conv1d_torch` over the one new step with ``conv_state`` as its history, then
    the state shifted to end with ``x``. Returns ``(batch, dim)`` in ``x``'s dtype.
    """
    y = causal_conv1d_torch(x[:, :, None], weight, bias, conv_state, silu)[:, :, 0]  # (b d)
    if conv_state.shape[-1] > 0:  # K > 1: the last K-1 inputs, x now the newest
        conv_state.copy_(torch.cat([conv_state[:, :, 1:], x[:, :, None].to(conv_state.dtype)], dim=-1))
    return y


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    r"""One time step of :func:`causal_conv1d`, for streaming: the output at the new input ``x``.

    With :math:`s` the ``K - 1`` inputs before ``x`` (``conv_state``, oldest
    first),

    .. math::

        y_{b,d} = \sigma\Big(\beta_d + \sum_{k=0}^{K-2} w_{d,k}\, s_{b,d,k}
        + w_{d,K-1}\, x_{b,d}\Big),

    and ``conv_state`` is shifted in place to end with ``x``. Stepping through
    a sequence gives :func:`causal_conv1d`'s output with ``conv_state`` as its
    ``initial_state``; the same call as causal-conv1d's
    ``causal_conv1d_update`` [1]_ for a state of exactly ``K - 1`` inputs.

    Parameters
    ----------
    x : Tensor, shape ``(batch, dim)``
        The new input, float32, float16, bfloat16 or float64, in any strides
        (a slice of a larger projection is read in place).
    conv_state : Tensor, shape ``(batch, dim, K - 1)``
        The previous ``K - 1`` inputs, oldest first, in any floating dtype;
        updated in place. Zeros before the first sample.
    weight : Tensor, shape ``(dim, K)`` or ``(dim, 1, K)``
        As in :func:`causal_conv1d`.
    bias : Tensor, shape ``(dim,)``, optional
    activation : {None, "silu"}, default None
    backend : {"auto", "torch", "triton"}, default "auto"
        ``"triton"``: one kernel (CUDA tensors, or CPU tensors under
        ``TRITON_INTERPRET=1``; needs a contiguous ``conv_state`` and
        ``K <= 16``). ``"torch"``: a few PyTorch ops, any device and layout.
        ``"auto"``: Triton on CUDA when it can, torch otherwise.

    Returns
    -------
    y : Tensor, shape ``(batch, dim)``
        In ``x``'s dtype. Sums are carried in float32 (float64 for float64
        ``x``). Not differentiable through the Triton kernel (streaming
        inference); the torch path is ordinary autograd.

    Raises
    ------
    TypeError
        Non-tensor, integer or complex inputs.
    ValueError
        Wrong shapes, tensors on several devices, an unknown activation or
        backend, or ``backend="triton"`` with a non-contiguous ``conv_state``
        or ``K > 16``.

    References
    ----------
    .. [1] T. Dao, causal-conv1d, https://github.com/Dao-AILab/causal-conv1d.

    Examples
    --------
    >>> import torch
    >>> from sciamba.kernels import causal_conv1d, causal_conv1d_update
    >>> b, d, L, K = 2, 3, 6, 4
    >>> x, w, bias = torch.randn(b, d, L), torch.randn(d, K), torch.randn(d)
    >>> state = torch.zeros(b, d, K - 1)
    >>> ys = [causal_conv1d_update(x[..., t], state, w, bias, "silu") for t in range(L)]
    >>> torch.allclose(torch.stack(ys, -1), causal_conv1d(x, w, bias, "silu"), atol=1e-6)
    True
    >>> torch.equal(state, x[..., L - (K - 1):])  # the last K - 1 inputs
    True
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (batch, dim), got {tuple(x.shape)}")
    name = resolve_backend(backend, x.device)
    _, weight, bias, _, silu = validate_conv_inputs(x[:, :, None], weight, bias, activation)
    _check_tensor("conv_state", conv_state, "convolutions")
    _check_device("conv_state", conv_state, x.device, "x")
    K = weight.shape[1]
    if tuple(conv_state.shape) != (x.shape[0], x.shape[1], K - 1):
        raise ValueError(
            f"conv_state must have shape (batch, dim, K - 1) = {(x.shape[0], x.shape[1], K - 1)}, "
            f"got {tuple(conv_state.shape)}"
        )
    if name == "triton":
        from ._triton_conv import MAX_K

        why = ("conv_state is updated in place and must be contiguous" if not conv_state.is_contiguous()
               else f"kernel widths are K <= {MAX_K}, got K = {K}" if K > MAX_K else None)
        if why is None:
            from ._triton_step import causal_conv1d_update_triton

            return causal_conv1d_update_triton(x, conv_state, weight, bias, silu)
        if backend != "auto":
            raise ValueError(f"backend='triton': {why}; use backend='torch'")
    return causal_conv1d_update_torch(x, conv_state, weight, bias, silu)
