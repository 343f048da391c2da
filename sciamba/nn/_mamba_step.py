"""``Mamba.step`` as three Triton launches a layer (the kernels: ``sciamba.kernels._triton_block_step``).

A streaming step of a small Mamba stack is launch-bound: at batch 8 the
layer-by-layer step of a 4-layer ``Mamba(256)`` is 35 launches (0.23 ms of
GPU work on an H100, 3-4 ms of host time on the hosts measured).
:func:`stack_step` issues ``3 n_layers + 1``, and its kernels' GPU time is
lower too (36 / 66 / 99 us at batch 1 / 8 / 64 against 82 / 225 / 153).
It runs the same arithmetic as the layer-by-layer step
(:meth:`sciamba.nn.MambaBlock._step` with the fused residual norms), with
the products summed in another order, so the two agree to float32 rounding
(and, as that step does, with the parallel forward).

:func:`fused_step_applies` says when it is used: the Triton backend, float32
parameters, input and gaps with no autocast, no gradient to record and no
dropout to apply, and the states as :meth:`Mamba.allocate_state` makes them
(contiguous float32, updated in place). A ``gap`` scales the step sizes and a
zero gap marks a padded step (zero input to the convolution, state kept,
zero output), as in the layer-by-layer step.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from functools import partial

import torch

from sciamba.kernels import _triton_block_step as tk
from sciamba.kernels._backends import _interpret_enabled, on_device, resolve_backend
from sciamba.kernels._launch import bind, cdiv, launch, next_pow2
from sciamba.kernels import _triton_norm as tn
from sciamba.kernels._triton_norm import eps_pair

from ._checks import ModelSnapshot
from ._norm import RMSNorm

__all__ = ["fused_step_applies", "stack_step"]


def fused_step_applies(model, x_t: torch.Tensor, gap: torch.Tensor | None, state) -> bool:
    """Whether :func:`stack_step` computes ``model``'s step for these (checked) inputs."""
    if x_t.dtype != torch.float32 or x_t.device.type not in ("cuda", "cpu"):
        return False
    if gap is not None and gap.dtype != torch.float32:
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


# Tile sizes: BE channels and BO output features a program. The products' loops over d
# and E take chunks of about 2**14 products a program (each iteration waits on its loads:
# fewer, larger ones were faster, to the register limit of 4 warps). BO = 8 doubles the
# output product's programs: its step time at batch 8 fell from 24.5 to 14.5 us (4 layers).
_BE, _BO, _WORK = 16, 8, 1 << 14


def _launches(model, x_t: torch.Tensor, gap: torch.Tensor | None, out: torch.Tensor, state,
              buf: torch.Tensor | None) -> tuple:
    """The step's kernels as ``(kernel, grid, args, kwargs)``, and the scratch buffer they use.

    ``x_t`` ``(b, d)`` contiguous float32; ``gap`` ``(b,)`` contiguous float32 or None;
    ``out`` the output; ``buf`` the scratch, or None for a new one.
    """
    b, d = x_t.shape
    blk = model.layers[0].mixer
    E, N, R, K = blk.d_inner, blk.d_state, blk.dt_rank, blk.d_conv
    J = R + 2 * N
    BB, BE, BO = min(next_pow2(b), 8), _BE, _BO
    BD = max(16, min(next_pow2(d), _WORK // (BB * BE)))  # chunk of the loop over d
    BC = max(16, min(next_pow2(E), _WORK // (BB * BO)))  # and over E
    T = cdiv(E, BE)
    rb = cdiv(b, BB)
    # One allocation for the step's scratch: the residual stream, u, z, y, the T channel
    # tiles' parts of x_proj u, (b, T, J), and the last norm's (b,) 1/rms.
    if buf is None:
        buf = torch.empty(b * d + 3 * b * E + b * T * J + b, device=x_t.device, dtype=torch.float32)
    h_buf = buf[: b * d].view(b, d)
    u, z, y = buf[b * d: b * (d + 3 * E)].view(3, b, E).unbind(0)
    xp = buf[b * (d + 3 * E): b * (d + 3 * E + T * J)].view(b, T, J)
    rstd = buf[b * (d + 3 * E + T * J):]  # the last norm's 1/rms a row (not read)
    fast = x_t.device.type == "cuda" and not _interpret_enabled()
    h = x_t  # the residual stream: the input, then h_buf, updated in place
    has_gap = gap is not None
    g = gap if has_gap else buf
    calls = []
    for layer, s in zip(model.layers, state.layers):
        m = layer.mixer
        eps_hi, eps_lo = eps_pair(layer.norm.eps)
        calls.append((tk.in_kernel, (T, rb), (
            h, layer.norm.weight, m.in_proj.weight, m.in_proj.bias if m.in_proj.bias is not None else buf,
            m.conv1d.weight, m.conv1d.bias if m.conv1d.bias is not None else buf,
            s.conv if K > 1 else buf, m.x_proj.weight, u, z, xp, g, b, d, E, T, J, eps_hi, eps_lo), dict(
            K=K, KP=next_pow2(K), BB=BB, BE=BE, BD=BD, JP=next_pow2(J),
            HAS_WB=m.in_proj.bias is not None, HAS_CB=m.conv1d.bias is not None, HAS_GAP=has_gap,
            num_warps=4)))
        calls.append((tk.ssm_kernel, (T, rb), (
            u, z, xp, m.dt_proj.weight, m.dt_proj.bias, m.A_log, m.D, s.ssm, y, g, b, E, R, N, T, J), dict(
            RP=next_pow2(R), NP=next_pow2(N), TP=next_pow2(T), BB=BB, BE=BE, FAST=fast, HAS_GAP=has_gap,
            num_warps=4)))
        calls.append((tk.out_kernel, (cdiv(d, BO), rb), (
            y, m.out_proj.weight, m.out_proj.bias if m.out_proj.bias is not None else buf, h, h_buf, g,
            b, d, E), dict(BB=BB, BO=BO, BC=BC, HAS_OB=m.out_proj.bias is not None, HAS_GAP=has_gap,
                           num_warps=4)))
        h = h_buf
    eps_hi, eps_lo = eps_pair(model.norm_f.eps)
    # The stack's last norm: the RMS norm's own forward kernel.
    BM, BDN, nw = tn._blocks(d, _interpret_enabled())
    calls.append((tn._fwd_kernel, (cdiv(b, BM),), (h, rstd, model.norm_f.weight, out, rstd, rstd, b, d,
                                                  eps_hi, eps_lo),
                  dict(HAS_RES=False, HAS_W=True, BM=BM, BD=BDN, num_warps=nw)))
    return calls, buf


class _Plan:
    """A step's launches bound once (:func:`sciamba.kernels._launch.bind`) for one model, batch
    and state, replayed with each new input: the host then spends no time on launch keys.

    It holds the scratch buffer, the state's tensors (so their ids stay theirs) and what
    the launches were built from: the model's submodules and parameters (a
    :class:`ModelSnapshot`) and the norms' eps. :meth:`valid` checks them before each
    replay; a change means a new plan.
    """

    def __init__(self, model, x_t: torch.Tensor, gap: torch.Tensor | None, out: torch.Tensor, state):
        calls, self.buf = _launches(model, x_t, gap, out, state, None)
        for kernel, grid, args, kwargs in calls:  # this step, launched (and compiled) as usual
            launch(kernel, grid, *args, **kwargs)
        self.runs = []
        for kernel, grid, args, kwargs in calls:
            # Through launch() where Triton launches it (the interpreter, another Triton).
            run = bind(kernel, grid, *args, **kwargs) or partial(_relaunch, kernel, grid, kwargs)
            # Positions of the input, gap and output, which change at every step: (position,
            # which of the three).
            fresh = (x_t, gap, out)
            slots = tuple((i, w) for i, a in enumerate(args) for w, f in enumerate(fresh) if a is f)
            self.runs.append((run, args, slots))
        self.state = [t for s in state.layers for t in (s.conv, s.ssm)]
        self.model = ModelSnapshot(model)
        self.norms = [(n, n.eps) for n in model.modules() if isinstance(n, RMSNorm)]

    def valid(self) -> bool:
        return self.model.unchanged() and all(n.eps == eps for n, eps in self.norms)

    def __call__(self, x_t: torch.Tensor, gap: torch.Tensor | None, out: torch.Tensor) -> None:
        fresh = (x_t, gap, out)
        for run, args, slots in self.runs:
            if slots:
                args = list(args)
                for i, w in slots:
                    args[i] = fresh[w]
            run(*args)


# Plans per model (weakly: a dropped model drops its plans), a few states each.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PLANS_PER_MODEL = 4


def stack_step(model, x_t: torch.Tensor, gap: torch.Tensor | None, state) -> torch.Tensor:
    """One step of the causal stack ``model`` on ``x_t`` ``(b, d)`` (``gap`` ``(b,)`` or None);
    states updated in place.

    Returns the final norm's output ``(b, d)``, as ``Mamba._step``. The launches are
    replayed from a :class:`_Plan` kept for this model, batch and state (the last
    ``_PLANS_PER_MODEL`` of them), except under CUDA graph capture: a captured graph must
    own its scratch memory.
    """
    x_t = x_t.contiguous()
    gap = gap.contiguous() if gap is not None else None  # a column gaps[:, t] is strided
    out = torch.empty_like(x_t)
    with on_device(x_t):
        if x_t.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            for kernel, grid, args, kwargs in _launches(model, x_t, gap, out, state, None)[0]:
                launch(kernel, grid, *args, **kwargs)
            return out
        plans = _PLANS.setdefault(model, OrderedDict())
        key = (x_t.shape[0], x_t.device, x_t.data_ptr() & 15, None if gap is None else gap.data_ptr() & 15,
               *(id(t) for s in state.layers for t in (s.conv, s.ssm)))
        plan = plans.pop(key, None)
        if plan is not None and plan.valid():
            plan(x_t, gap, out)
        else:
            if len(plans) >= _PLANS_PER_MODEL:
                plans.popitem(last=False)  # the least recently used
            plan = _Plan(model, x_t, gap, out, state)  # runs this step
        plans[key] = plan  # most recently used last
    return out


def _relaunch(kernel, grid, kwargs: dict, *args) -> None:
    launch(kernel, grid, *args, **kwargs)
