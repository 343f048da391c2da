"""Input validation shared by the backbones (one place for the error messages)."""

from __future__ import annotations

import numbers

import torch

__all__ = ["ModelSnapshot", "check_dropout", "check_positive_int", "check_sequence", "check_gaps", "check_step_gap",
           "reject_gaps"]


def check_positive_int(name: str, value, low: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_dropout(dropout) -> float:
    """Check a dropout probability in ``[0, 1)``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return dropout


def check_sequence(x, d_model: int, who: str) -> torch.Tensor:
    """Check a ``(batch, L, d_model)`` floating tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of shape (batch, L, {d_model}), got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(
            f"{who} expects input of shape (batch, L, d_model={d_model}), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point input, got {x.dtype}; cast with x.float()")
    return x


def check_gaps(gaps, x: torch.Tensor, who: str) -> torch.Tensor | None:
    """Check ``gaps`` of shape ``(batch, L)`` against ``x`` ``(batch, L, d)``; float32, or float64 for float64 ``x``."""
    if gaps is None:
        return None
    if not isinstance(gaps, torch.Tensor):
        raise TypeError(f"{who}: gaps must be a torch.Tensor of shape (batch, L), got {type(gaps).__name__}")
    if tuple(gaps.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{who}: gaps must have shape (batch, L) = {tuple(x.shape[:2])} to match the input, "
            f"got {tuple(gaps.shape)}"
        )
    # float32 (float64 for float64 inputs): gaps enter the step sizes, never bf16.
    gaps = gaps.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    if not bool(torch.isfinite(gaps).all()) or bool((gaps < 0).any()):
        raise ValueError(
            f"{who}: gaps must be finite and >= 0 (time intervals in units of the nominal step; "
            "0 marks a padded position)"
        )
    return gaps


def check_step_gap(gap, x_t: torch.Tensor, who: str) -> torch.Tensor | None:
    """Check the gap ``(batch,)`` of one step against ``x_t`` ``(batch, d)``."""
    if gap is None:
        return None
    if not isinstance(gap, torch.Tensor) or gap.dim() != 1:
        raise ValueError(
            f"{who}: gap must be a 1-D torch.Tensor of shape (batch,) = ({x_t.shape[0]},), "
            f"got {tuple(getattr(gap, 'shape', ())) or type(gap).__name__}"
        )
    return check_gaps(gap[:, None], x_t[:, None], who)[:, 0]


def reject_gaps(gaps, who: str) -> None:
    if gaps is not None:
        raise ValueError(
            f"{who} does not model irregular time (supports_gaps is False); pass gaps=None, "
            "resample the series to a regular grid, or use the 'mamba' backbone, which scales "
            "its step size by the gaps"
        )


class ModelSnapshot:
    """A module's submodules and parameters as they are now, to tell cheaply whether any changed.

    :meth:`unchanged` is False once a submodule or parameter was replaced
    (``block.x_proj = nn.Linear(...)``, ``lin.weight = nn.Parameter(...)``) or a
    parameter's memory moved (``model.to()``, ``.half()``, ``p.data = ...``).
    Values changed in place (an optimizer step, ``load_state_dict``) keep it
    True: the memory is the same. For per-call guards (a replayed CUDA graph,
    bound launches): a few microseconds, where ``model.parameters()`` walks the
    module tree (44 us for a 4-layer ``Mamba(256)`` on a CPU, 2026-11-25).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        modules = list(model.modules())
        self._owned = [(m._modules, name, child) for m in modules for name, child in m._modules.items()]
        # A None parameter (an absent bias) is kept too: giving it a value is a change.
        self._params = [(m._parameters, name, p, None if p is None else p.data_ptr()) for m in modules
                        for name, p in m._parameters.items()]

    def unchanged(self) -> bool:
        return (all(d.get(name) is child for d, name, child in self._owned)
                and all(d.get(name) is p and (p is None or p.data_ptr() == ptr)
                        for d, name, p, ptr in self._params))
