"""Causal convolution by FFT: the convolutional view of a linear time-invariant SSM."""

from __future__ import annotations

import torch

__all__ = ["causal_fft_conv"]


def causal_fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Causal convolution of ``u`` with the kernel ``k`` over the last axis, by FFT.

    .. math:: y[l] = \sum_{j=0}^{l} k[j]\, u[l - j], \qquad l = 0, \dots, L-1.

    Both signals are zero padded to ``L + Lk`` samples before the transform, so
    the circular convolution of the FFT has no wrap-around in the first ``L``
    outputs: :math:`O(L \log L)` instead of :math:`O(L^2)`.

    Parameters
    ----------
    u : torch.Tensor
        Input, shape ``(..., L)``, real or complex.
    k : torch.Tensor
        Kernel, shape ``(..., Lk)``; leading dims broadcast against those of ``u``.
        Taps beyond ``L`` cannot reach the output and are dropped.

    Returns
    -------
    y : torch.Tensor
        Shape ``broadcast(u.shape[:-1], k.shape[:-1]) + (L,)``. Real (``rfft``)
        when both inputs are real, complex otherwise.

    Raises
    ------
    TypeError
        If ``u`` or ``k`` is not a floating or complex tensor.
    ValueError
        If either is 0-dimensional or has an empty last axis.

    See Also
    --------
    scipy.signal.fftconvolve : the full (non-causal-truncated) NumPy analogue.

    Notes
    -----
    This is the convolutional mode of S4 [1]_: for a time-invariant SSM the
    output is the input convolved with the impulse response ``k``.

    References
    ----------
    .. [1] A. Gu, K. Goel, C. Ré, "Efficiently Modeling Long Sequences with
       Structured State Spaces", ICLR 2022, arXiv:2111.00396.

    Examples
    --------
    >>> import torch
    >>> from sciamba.ssm import causal_fft_conv
    >>> u = torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> k = torch.tensor([1.0, 0.5])
    >>> causal_fft_conv(u, k)
    tensor([1.0000, 2.5000, 4.0000, 5.5000])
    """
    for name, t in (("u", u), ("k", k)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(f"{name} must be a floating or complex tensor; got dtype {t.dtype}")
        if t.ndim == 0 or t.shape[-1] == 0:
            raise ValueError(f"{name} must have a non-empty last (time) axis; got shape {tuple(t.shape)}")
    L = u.shape[-1]
    k = k[..., :L]
    n = L + k.shape[-1]  # >= L + Lk - 1: no circular wrap-around in y[:L]
    if u.is_complex() or k.is_complex():
        y = torch.fft.ifft(torch.fft.fft(u, n=n) * torch.fft.fft(k, n=n), n=n)  # (... n)
    else:
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)  # (... n)
    return y[..., :L]
