"""``Mamba.step`` as two Triton launches a layer (the kernels: ``sciamba.kernels._triton_block_step``).

A streaming step of a small Mamba stack is host time: at batch 8, a 4-layer
``Mamba(256)`` step is 0.2 ms of GPU work behind 35 launches, which the
hosts measured took 3-4 ms to issue from Python. :func:`stack_step` issues
``2 n_layers + 1``. It runs the same arithmetic as the layer-by-layer step
(:meth:`sciamba.nn.MambaBlock._step` with the fused residual norms), with
the products summed in another order, so its outputs agree with it to
float32 rounding (and, as that step does, with the parallel forward).

:func:`fused_step_applies` says when it is used: the Triton backend, float32
parameters and input with no autocast, no ``gap`` (the masking and scaled
step sizes of irregular time take the layer-by-layer path), no gradient to
record and no dropout to apply; the states as :meth:`Mamba.allocate_state`
makes them (contiguous, updated in place).
"""

from __future__ import annotations

import struct

import torch

from sciamba.kernels import _triton_block_step as tk
from sciamba.kernels._backends import _interpret_enabled, on_device, resolve_backend
from sciamba.kernels._launch import cdiv, launch, next_pow2

__all__ = ["fused_step_applies", "stack_step"]


def fused_step_applies(model, x_t: torch.Tensor, gap: torch.Tensor | None, state) -> bool:
    """Whether :func:`stack_step` computes ``model``'s step for these (checked) inputs."""
    if gap is not None or x_t.dtype != torch.float32 or x_t.device.type not in ("cuda", "cpu"):
        return False
    if x_t.device.type == "cpu" and not (_interpret_enabled() and model.backend == "triton"):
        return False  # on the CPU only under Triton's interpreter, for the tests
    if resolve_backend(model.backend, x_t.device) != "triton" or torch.is_autocast_enabled(x_t.device.type):
        return False
    if model.training and any(layer.dropout.p > 0 for layer in model.layers):
        return False
    if torch.is_grad_enabled() and (x_t.requires_grad or any(p.requires_grad for p in model.parameters())):
        return False  # the kernels record no graph
    w = model.layers[0].mixer.in_proj.weight
    if w.dtype != torch.float32 or w.device != x_t.device:
        return False  # (a parameter in another float dtype would be read as such, in its own precision)
    return all(s.conv.is_contiguous() and s.ssm.is_contiguous() and s.ssm.dtype == torch.float32
               and s.conv.dtype == torch.float32 for s in state.layers)


def _eps_pair(eps: float) -> tuple[float, float]:
    """``eps`` as two float32 numbers whose sum restores it (kernel scalars are float32)."""
    hi = struct.unpack("f", struct.pack("f", eps))[0]
    return hi, eps - hi


def _tiles(b: int, E: int) -> tuple[int, int]:
    """Rows ``BB`` and channels ``BE`` of a program: register tiles of at most 8 x 32 x 16."""
    return min(next_pow2(b), 8), min(32, max(16, next_pow2(E)))


def stack_step(model, x_t: torch.Tensor, state) -> torch.Tensor:
    """One step of the causal stack ``model`` on ``x_t`` ``(b, d)``; states updated in place.

    Returns the final norm's output ``(b, d)``, as ``Mamba._step``.
    """
    b, d = x_t.shape
    blk = model.layers[0].mixer
    E, N, R, K = blk.d_inner, blk.d_state, blk.dt_rank, blk.d_conv
    BB, BE = _tiles(b, E)
    T = cdiv(E, BE)
    grid = (T, cdiv(b, BB))
    x_t = x_t.contiguous()
    # One allocation for the step's scratch: two residual buffers (ping-pong), u, z and
    # the output product's T partial sums.
    buf = torch.empty(2 * b * d + 2 * b * E + T * b * d, device=x_t.device, dtype=torch.float32)
    hs = buf[: 2 * b * d].view(2, b, d)
    u = buf[2 * b * d: 2 * b * d + b * E].view(b, E)
    z = buf[2 * b * d + b * E: 2 * b * (d + E)].view(b, E)
    parts = buf[2 * b * (d + E):].view(T, b, d)
    fast = x_t.device.type == "cuda" and not _interpret_enabled()
    h, ob = x_t, None  # the residual stream; the previous layer's out_proj bias
    with on_device(x_t):
        for i, (layer, s) in enumerate(zip(model.layers, state.layers)):
            m = layer.mixer
            h_next = h if i == 0 else hs[i % 2]
            eps_hi, eps_lo = _eps_pair(layer.norm.eps)
            launch(tk.in_kernel, grid, h, parts, ob if ob is not None else buf, h_next, layer.norm.weight,
                   m.in_proj.weight, m.in_proj.bias if m.in_proj.bias is not None else buf,
                   m.conv1d.weight, m.conv1d.bias if m.conv1d.bias is not None else buf,
                   s.conv if K > 1 else buf, u, z, b, d, E, T, eps_hi, eps_lo,
                   K=K, KP=next_pow2(K), BB=BB, BE=BE, BD=16, HAS_P=i > 0, HAS_OB=ob is not None,
                   HAS_WB=m.in_proj.bias is not None, HAS_CB=m.conv1d.bias is not None, num_warps=4)
            launch(tk.out_kernel, grid, u, z, m.x_proj.weight, m.dt_proj.weight, m.dt_proj.bias,
                   m.A_log, m.D, s.ssm, m.out_proj.weight, parts, b, d, E, R, N,
                   RP=next_pow2(R), NP=next_pow2(N), BB=BB, BE=BE, BC=32, BO=32, FAST=fast, num_warps=4)
            h, ob = h_next, m.out_proj.bias
        y = torch.empty_like(x_t)
        eps_hi, eps_lo = _eps_pair(model.norm_f.eps)
        launch(tk.final_kernel, (cdiv(b, BB),), h, parts, ob if ob is not None else buf, model.norm_f.weight, y,
               b, d, T, eps_hi, eps_lo, BB=BB, BD=32, HAS_OB=ob is not None, num_warps=4)
    return y
