r"""Selective scan kernels (``sciamba.kernels``).

The selective scan is the recurrence at the heart of Mamba [1]_:

.. math::

    h_t = e^{\Delta_t A} \odot h_{t-1} + \Delta_t\, u_t\, B_t, \qquad
    y_t = C_t^\top h_t + D\, u_t,

with input-dependent step sizes :math:`\Delta_t`, input and output matrices
:math:`B_t, C_t`, per channel and per state.

=================================  ==============================================
:func:`selective_scan`             the scan; mamba_ssm's ``selective_scan_fn``
                                   arguments plus ``initial_state`` and
                                   ``backend``; differentiable
:func:`selective_scan_ref`         the plain sequential definition (the oracle)
:func:`selective_state_update`     one recurrent step, in place (streaming)
:func:`available_backends`         which backends run here; what ``"auto"`` picks
:func:`causal_conv1d`              the block's short causal depthwise conv1d
                                   (+ SiLU), fused; differentiable
:func:`causal_conv1d_update`       its one-step form, in place (streaming)
:func:`rms_norm`                   the residual stack's RMS normalization;
                                   differentiable
=================================  ==============================================

Backends
--------
``"triton"``
    Triton kernels, forward and backward, on CUDA tensors (and on CPU tensors
    through Triton's interpreter when ``TRITON_INTERPRET=1``, for testing).
``"torch"``
    Chunked, vectorized PyTorch: memory per chunk of time steps, never the
    full ``batch·dim·L·N`` state; the fast CPU path.
``"auto"``
    Triton on CUDA tensors, torch otherwise.

Unequal lengths and streaming
-----------------------------
A step with :math:`\Delta_t = 0` leaves the state unchanged, so series of
different lengths are batched by *left*-padding with :math:`\Delta = 0`
(see :func:`selective_scan`). ``initial_state`` / ``return_last_state``
continue a scan across pieces of a long series, and
:func:`selective_state_update` advances it one sample at a time.

References
----------
.. [1] A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with Selective
   State Spaces", arXiv:2312.00752, 2023.

Examples
--------
>>> import torch
>>> from sciamba.kernels import selective_scan
>>> u = torch.randn(1, 2, 8)
>>> y = selective_scan(u, torch.rand_like(u), -torch.rand(2, 4),
...                    torch.randn(1, 4, 8), torch.randn(1, 4, 8))
>>> y.shape
torch.Size([1, 2, 8])
"""

from ._backends import BackendReport, available_backends
from ._causal_conv import causal_conv1d, causal_conv1d_update
from ._interface import selective_scan
from ._reference import selective_scan_ref
from ._rms_norm import rms_norm
from ._state_update import selective_state_update

__all__ = [
    "BackendReport",
    "available_backends",
    "causal_conv1d",
    "causal_conv1d_update",
    "rms_norm",
    "selective_scan",
    "selective_scan_ref",
    "selective_state_update",
]
