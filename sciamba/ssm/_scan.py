"""Linear recurrences h[k] = M_k h[k-1] + b[k] by parallel (Hillis-Steele) prefix scans.

Both scans take O(log L) vectorized steps instead of an L-step Python loop, and
are plain differentiable tensor code.
"""

from __future__ import annotations

import torch

__all__ = ["lti_scan", "ltv_scan"]


def lti_scan(M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Inclusive scan :math:`h[k] = M h[k-1] + b[k]`, :math:`h[-1] = 0`, for a constant ``M``.

    ``M`` is ``(n, n)``, ``b`` is ``(..., L, n)``; returns ``h`` of the shape of ``b``.
    After the step with offset ``d``, ``h[k]`` holds :math:`\sum_{j<2d} M^j b[k-j]`.
    """
    L = b.shape[-2]
    h = b  # (... L n)
    P = M  # (n n): M^d
    d = 1
    while d < L:
        h = torch.cat([h[..., :d, :], h[..., d:, :] + h[..., :-d, :] @ P.mT], dim=-2)  # (... L n)
        P = P @ P
        d *= 2
    return h


def ltv_scan(M: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Inclusive scan :math:`h[k] = M_k h[k-1] + b[k]`, :math:`h[-1] = 0`, time-varying ``M``.

    ``M`` is ``(..., L, n, n)``, ``b`` is ``(..., L, n)`` (leading dims broadcast).
    Element ``k`` after the step with offset ``d`` is the affine map over the window
    ``(k - 2d, k]``: ``(M_k \cdots M_{k-2d+1}, h_k)``; composing with the element
    ``d`` earlier doubles the window.
    """
    L = b.shape[-2]
    batch = torch.broadcast_shapes(M.shape[:-3], b.shape[:-2])
    M = M.expand(batch + M.shape[-3:])  # (... L n n)
    h = b.expand(batch + b.shape[-2:])  # (... L n)
    d = 1
    while d < L:
        h_new = h[..., d:, :] + (M[..., d:, :, :] @ h[..., :-d, :, None])[..., 0]  # (... L-d n)
        h = torch.cat([h[..., :d, :], h_new], dim=-2)  # (... L n)
        if 2 * d < L:  # the products are only needed for the next level
            M = torch.cat([M[..., :d, :, :], M[..., d:, :, :] @ M[..., :-d, :, :]], dim=-3)  # (... L n n)
        d *= 2
    return h
