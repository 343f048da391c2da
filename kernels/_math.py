"""Pointwise pieces of the selective-scan math, shared by every implementation.

The reference scan, the chunked torch backend and the recurrent step all
discretize Δ, pick the compute precision and gate the output through the
functions below, so each formula exists exactly once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["add_skip", "compute_dtype", "discretize_delta", "gate_output", "softplus_grad"]

#: Above this, softplus(x) == x to float32 precision; mamba_ssm's CUDA kernel
#: and ``torch.nn.functional.softplus`` use the same threshold.
SOFTPLUS_THRESHOLD = 20.0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Precision in which states and sums are carried for inputs of ``dtype``.

    float64 inputs are computed in float64 (the reference's oracle mode);
    float32, float16 and bfloat16 inputs are computed in float32.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def discretize_delta(
    delta: torch.Tensor,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    gaps: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Step size :math:`\Delta = \operatorname{softplus}(\delta + b)\, g` (or without softplus, or gaps).

    Parameters
    ----------
    delta : Tensor, shape ``(..., dim, L)`` or ``(batch, dim)``
        Raw step sizes: a scan's, or one step's (2-D). ``delta_bias`` broadcasts along ``dim``.
    delta_bias : Tensor of shape ``(dim,)``, optional
        Added before the softplus.
    delta_softplus : bool
        Apply :math:`\log(1 + e^x)` (identity above 20, as in mamba_ssm).
    gaps : Tensor, shape ``(..., L)`` or ``(batch,)``, optional
        Observed time intervals :math:`g`, in units of the nominal step, that
        multiply :math:`\Delta` after the softplus (irregular sampling; 0 at
        padded positions); they broadcast along ``dim``.

    Returns
    -------
    Tensor
        Δ, same shape as ``delta``, in its dtype (promoted by ``gaps``'s).
    """
    step = delta.dim() == 2  # (batch, dim): one recurrent step
    if delta_bias is not None:
        delta = delta + (delta_bias if step else delta_bias[:, None])
    if delta_softplus:
        delta = F.softplus(delta, beta=1.0, threshold=SOFTPLUS_THRESHOLD)
    if gaps is not None:
        delta = delta * (gaps[:, None] if step else gaps[..., None, :])
    return delta


def softplus_grad(x: torch.Tensor) -> torch.Tensor:
    r"""Derivative of :func:`discretize_delta`'s softplus at ``x``: :math:`\sigma(x)`, and 1 above
    the threshold, where the softplus is the identity (as ``torch.nn.functional.softplus``'s backward).

    For the fused Mamba block, which writes its backward out instead of recording the ops.
    """
    return torch.where(x > SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(x))


def add_skip(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    r"""Skip connection :math:`y + D \odot u` (identity if ``D`` is None).

    ``u`` is ``(..., dim, L)`` (scan) or ``(..., dim)`` (step); ``D`` is ``(dim,)``.
    """
    if D is None:
        return y
    return torch.addcmul(y, D if u.dim() == 2 else D[:, None], u)


def gate_output(y: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    r"""Multiplicative gate :math:`y \odot \operatorname{silu}(z)` (identity if ``z`` is None)."""
    if z is None:
        return y
    return y * F.silu(z)
