"""Public ``rms_norm``: validation and dispatch (PyTorch's fused op, or the Triton kernels)."""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

from ._backends import resolve_backend
from ._interface import INPUT_DTYPES, _as, _check_device, _check_tensor
from ._math import compute_dtype

__all__ = ["rms_norm"]

#: Widest row of the Triton kernels, which hold whole rows in registers (kept
#: here, not in ``_triton_norm``, so that dispatch needs no Triton import).
MAX_D = 8192

#: ``backend="auto"`` takes the Triton kernels on CUDA from this many elements
#: on. A norm alone is cheaper on the host as PyTorch's fused op (H100 machine,
#: 2026-11-24, forward+backward at 8 x 4096 x 256 timed by itself: 0.77 ms with
#: the kernels, 0.23 ms with PyTorch's op), but inside a training step that
#: difference did not show, while the GPU time does: 0.18 -> 0.08 ms per norm,
#: and a Mamba(256, 4) training step at 8 x 4096 took 9.67 -> 9.22 ms GPU time
#: with the kernels from 2**20 elements on (eager steps equal within noise).
TRITON_MIN_NUMEL = 1 << 20


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-5,
    *,
    residual: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Root-mean-square normalization over the last axis, differentiable.

    .. math::

        y = \frac{x}{\sqrt{\tfrac{1}{D}\sum_{i=1}^{D} x_i^2 + \epsilon}} \odot w

    for every row :math:`x \in \mathbb{R}^D` of ``x`` [1]_. The norm of the
    Mamba residual stack; no centring and no bias, so a zero row maps to zero.

    Parameters
    ----------
    x : Tensor, shape ``(..., D)``
        float32, float16, bfloat16 or float64.
    weight : Tensor, shape ``(D,)``, optional
        Gain :math:`w`; none when omitted.
    eps : float, default 1e-5
        Added to the mean square; must be positive.
    residual : Tensor, optional
        ``x``'s shape. When given, :math:`h = x + \text{residual}` is formed
        (in the compute dtype, stored in ``residual``'s dtype), normalized
        and returned with the result: the residual add and the pre-norm of
        the next layer in one pass, as in a pre-norm residual stack
        :math:`h_{l+1} = h_l + f_l(\operatorname{norm}(h_l))`.
    out_dtype : torch.dtype, optional
        dtype of the normalized output; default the dtype of the tensor
        normalized (``residual``'s with a residual, else ``x``'s). A lower
        precision (bfloat16 for the next layer's products) saves a separate
        cast; the value is the same, rounded once.
    backend : {"auto", "torch", "triton"}, default "auto"
        ``"triton"``: Triton kernels (CUDA tensors, or CPU tensors under
        ``TRITON_INTERPRET=1``). ``"torch"``: ``torch.nn.functional.rms_norm``.
        ``"auto"``: Triton on CUDA for inputs of at least ``2**20``
        elements with ``D <= 8192`` (where the GPU time dominates; below,
        PyTorch's fused op launches faster; wider rows do not fit the
        kernels' registers), torch otherwise.

    Returns
    -------
    y : Tensor
        ``x``'s shape, in ``out_dtype``. Statistics and products are computed
        in float32 (float64 for float64 ``x``) whatever the input dtype.
    h : Tensor
        Only with ``residual``: ``x + residual`` in ``residual``'s dtype.

    Raises
    ------
    TypeError
        Non-tensor, integer or complex input, or ``eps`` not a real number.
    ValueError
        An empty last axis, a ``weight`` of the wrong shape or on another
        device, ``eps`` not in ``(0, 1e38]``, an unknown backend, or
        ``backend="triton"`` where Triton cannot run or with ``D > 8192``.
    RuntimeError
        ``backend="triton"`` with a Triton installation that fails to import.

    Notes
    -----
    Differentiable once with the Triton kernels (a second derivative raises;
    use ``backend="torch"`` for that). The Triton backward pass sums the
    weight gradient per program and then over programs (deterministic);
    PyTorch's fused backward spends most of its time on that reduction for
    narrow rows (see ``_triton_norm``).

    References
    ----------
    .. [1] B. Zhang and R. Sennrich, "Root Mean Square Layer Normalization",
           NeurIPS 2019. arXiv:1910.07467.

    Examples
    --------
    >>> import torch
    >>> from sciamba.kernels import rms_norm
    >>> x = torch.tensor([[3.0, -3.0, 3.0, -3.0]])
    >>> torch.allclose(rms_norm(x, eps=1e-12), torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    True
    >>> w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> rms_norm(x, w, eps=1e-12)
    tensor([[ 1., -2.,  3., -4.]])

    Residual add and norm in one call:

    >>> y, h = rms_norm(x, w, eps=1e-12, residual=torch.ones(1, 4))
    >>> h
    tensor([[ 4., -2.,  4., -2.]])
    >>> torch.allclose(y, rms_norm(h, w, eps=1e-12))
    True
    """
    _check_tensor("x", x, "norms")
    if x.dtype not in INPUT_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; supported are float32, float16, bfloat16 and "
                        "float64")
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"x needs a non-empty last axis to normalize over, got shape "
                         f"{tuple(x.shape)}")
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
    if not (math.isfinite(eps) and 0 < eps <= 1e38):
        raise ValueError(f"eps must be positive and at most 1e38, got {eps!r}")
    D, cdt = x.shape[-1], compute_dtype(x.dtype)
    name = resolve_backend(backend, x.device)
    if backend == "auto" and (x.numel() < TRITON_MIN_NUMEL or D > MAX_D):
        name = "torch"
    if name == "triton" and D > MAX_D:
        raise ValueError(f"backend='triton' normalizes rows of at most {MAX_D} elements, got "
                         f"D = {D}; use backend='torch'")
    if residual is not None:
        _check_tensor("residual", residual, "norms")
        _check_device("residual", residual, x.device, "x")
        if residual.shape != x.shape:
            raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
        if residual.dtype not in INPUT_DTYPES:
            raise TypeError(f"residual has dtype {residual.dtype}; supported are float32, float16, "
                            "bfloat16 and float64")
        cdt = compute_dtype(residual.dtype) if residual.dtype == torch.float64 else cdt
    if out_dtype is not None and out_dtype not in INPUT_DTYPES:
        raise TypeError(f"out_dtype must be one of float32, float16, bfloat16 or float64, got {out_dtype!r}")
    if weight is not None:
        _check_tensor("weight", weight, "norms")
        _check_device("weight", weight, x.device, "x")
        if tuple(weight.shape) != (D,):
            raise ValueError(f"weight must have shape (D,) = {(D,)} for x of shape "
                             f"{tuple(x.shape)}, got {tuple(weight.shape)}")
        weight = _as(weight, cdt)  # a differentiable cast: the gradient reaches the caller's dtype
    if name == "triton":
        try:
            from ._triton_norm import rms_norm_triton
        except ImportError as exc:  # triton present but broken (version, driver)
            raise RuntimeError(f"backend='triton' failed to import its kernels ({exc}); "
                               "use backend='torch'") from exc
        return rms_norm_triton(x, weight, float(eps), cdt, residual, out_dtype)
    h = None
    if residual is not None:
        h = (x.to(cdt) + residual.to(cdt)).to(residual.dtype)  # (..., D)
        x = h
    y = F.rms_norm(x.to(cdt), (D,), weight, float(eps)).to(out_dtype or x.dtype)  # (..., D)
    return y if h is None else (y, h)
