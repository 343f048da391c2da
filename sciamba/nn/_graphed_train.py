"""Training steps replayed from a CUDA graph (:class:`GraphedTrainStep`)."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import nn

from ._capture import capture_stream, on_capture_stream
from ._checks import check_positive_int

__all__ = ["GraphedTrainStep"]


class GraphedTrainStep:
    r"""One training step per call (forward, loss, backward, optimizer step), replayed from a CUDA graph.

    Each call does exactly what this eager loop body does::

        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, autocast):   # when autocast is given
            loss = loss_fn(model(x), target)
        loss.backward()
        clip_grad_norm_(model.parameters(), max_grad_norm)  # when max_grad_norm is given
        optimizer.step()

    A small model's eager step on a GPU waits on the host (Python, autograd
    and a few hundred kernel launches), not on the GPU: ``Mamba(256, 4)`` at
    batch 8 and 1,024 time steps took 9-16 ms a step eagerly and 2.6-2.8 ms
    through this class on H100 machines (``benchmarks/bench_scaling.py``,
    2026-11-24). With fixed shapes the whole step
    is captured once as a CUDA graph (:class:`torch.cuda.CUDAGraph`, the
    "whole network capture" of PyTorch's CUDA graph notes) and each call
    copies the batch into static buffers and replays it. The first
    ``warmup`` calls run eagerly (on a side stream, as capture requires);
    the next one captures and replays, so every call trains on its own batch
    exactly once. For a model on the CPU every call runs eagerly, with the
    same results.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(x)``; any backbone of :mod:`sciamba.nn` or a model
        built on one. Its parameters and buffers must stay the same tensors
        (in-place updates are fine; ``model.to(...)`` or
        ``load_state_dict(..., assign=True)`` afterwards makes the next call
        raise), and so must its train/eval mode.
    loss_fn : callable
        ``loss_fn(output, target)`` returning a scalar tensor, without host
        synchronization (no ``.item()``, no data-dependent Python branches).
    optimizer : torch.optim.Optimizer
        Over the model's parameters. Optimizers with a ``capturable`` option
        (Adam, AdamW, ...) must be built with ``capturable=True`` for a CUDA
        model. Hyperparameters given as Python floats are fixed into the graph
        at capture: changing one later raises. To schedule the learning rate,
        build the optimizer with ``lr=torch.tensor(...)`` on the model's
        device and update that tensor in place. Its state must stay the same
        tensors too: load a checkpoint (``optimizer.load_state_dict``) before
        building the stepper, not after.
    autocast : {torch.bfloat16, torch.float16}, optional
        Run the forward pass and the loss under :func:`torch.autocast` with
        this dtype. No loss scaling is done, so prefer ``torch.bfloat16``
        (float16 gradients can underflow).
    max_grad_norm : float, optional
        Clip the gradients' total 2-norm to this value before the optimizer
        step (:func:`torch.nn.utils.clip_grad_norm_`).
    warmup : int, default 3
        Eager calls before the capture (at least 1): they compile kernels
        and create the optimizer's state.

    Attributes
    ----------
    graphed : bool
        True once calls replay a CUDA graph (CUDA models, after the warm-up).
    steps : int
        Calls made so far.

    Raises
    ------
    ValueError
        At a call, for a batch whose shape, dtype or device differs from the
        first call's (a graph replays fixed shapes: drop or pad the last
        partial batch), for hyperparameters changed or a train/eval switch
        after the capture; at construction, for an optimizer with
        ``capturable=False`` on CUDA.
    RuntimeError
        When the model's parameters or buffers, or the optimizer's state,
        were replaced after the capture.

    Notes
    -----
    Dropout works: PyTorch gives captured random number generation a fresh
    offset at every replay. The returned loss is a new tensor on the model's
    device; reading it (``float(loss)``) waits for the GPU, so read it only
    when needed (e.g. every 100 steps). A capture that fails (a ``loss_fn``
    that reads a value, say) raises and leaves the stepper uncaptured.

    After replays, the parameters' ``.grad`` are tensors of the graph's
    memory pool; set them to None (``optimizer.zero_grad(set_to_none=True)``)
    to give that memory back once the stepper is no longer used.

    Measured on an H100 (``benchmarks/bench_scaling.py``, batch 8, bf16
    autocast, AdamW): see ``benchmarks/RESULTS.md`` for the eager and graphed
    step times of Mamba and of a Transformer of the same size.

    References
    ----------
    .. [1] PyTorch, "CUDA semantics: CUDA Graphs -- whole-network capture",
       https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import GraphedTrainStep, Mamba
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(Mamba(8, 1, d_state=4), torch.nn.Linear(8, 1))
    >>> opt = torch.optim.AdamW(net.parameters(), lr=1e-2)  # on CUDA: capturable=True
    >>> train = GraphedTrainStep(net, torch.nn.functional.mse_loss, opt)  # eager on the CPU
    >>> x, y = torch.randn(4, 32, 8), torch.randn(4, 32, 1)
    >>> first = float(train(x, y))
    >>> for _ in range(20):
    ...     loss = train(x, y)
    >>> float(loss) < first
    True
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        autocast: torch.dtype | None = None,
        max_grad_norm: float | None = None,
        warmup: int = 3,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable as loss_fn(output, target), got {type(loss_fn).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if autocast is not None and autocast not in (torch.bfloat16, torch.float16):
            raise ValueError(f"autocast must be torch.bfloat16 or torch.float16, got {autocast!r}")
        if max_grad_norm is not None and not (isinstance(max_grad_norm, numbers.Real) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number, got {max_grad_norm!r}")
        params = list(model.parameters())
        if not params:
            raise ValueError("the model has no parameters to train")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.autocast, self.max_grad_norm = autocast, max_grad_norm
        self.warmup = check_positive_int("warmup", warmup)
        self.device = params[0].device
        if self.device.type == "cuda" and any(g.get("capturable") is False for g in optimizer.param_groups):
            raise ValueError(
                f"{type(optimizer).__name__} keeps its step count on the host unless built with "
                "capturable=True, which a CUDA graph cannot replay: pass capturable=True to it"
            )
        self.graphed = False
        self.steps = 0
        self._graph = None
        self._batch = None  # (shape, dtype, device) of x and of target, from the first call

    # The eager step, also the body the graph records.
    def _step(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            loss = self.loss_fn(self.model(x), target)
        loss.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.detach()

    def _hyperparameters(self) -> list:
        # What a replay cannot see change: every group's non-tensor settings (Python floats, bools).
        return [{k: v for k, v in g.items() if k != "params" and not isinstance(v, torch.Tensor)}
                for g in self.optimizer.param_groups]

    def _memory(self) -> tuple:
        """Addresses the graph reads and writes: parameters, buffers, the optimizer's state tensors."""
        state = (v for st in self.optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor))
        return (tuple(p.data_ptr() for p in self.model.parameters()),
                tuple(b.data_ptr() for b in self.model.buffers()),
                tuple(v.data_ptr() for v in state))

    def _modes(self) -> tuple:
        return tuple(m.training for m in self.model.modules())

    def _check_batch(self, x, target) -> None:
        for name, t in (("x", x), ("target", target)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        batch = tuple((t.shape, t.dtype, t.device) for t in (x, target))
        if self._batch is None:
            self._batch = batch
        elif batch != self._batch:
            name, got, want = next((n, g, w) for n, g, w in zip(("x", "target"), batch, self._batch) if g != w)
            raise ValueError(
                f"{name} is {tuple(got[0])} {got[1]} on {got[2]}, but this stepper trains on "
                f"{tuple(want[0])} {want[1]} on {want[2]} (its first call's): a graph replays fixed "
                "shapes (drop or pad the last partial batch, or build another GraphedTrainStep)"
            )

    def _check_unchanged(self) -> None:
        if self._modes() != self._modes_captured:
            raise ValueError(
                "the model (or one of its modules) was switched between train and eval mode after the "
                "capture, which replays the modes it recorded; build a new GraphedTrainStep"
            )
        params, buffers, state = self._memory()
        if (params, buffers) != self._ptrs[:2]:
            raise RuntimeError(
                "the model's parameters or buffers were replaced (e.g. model.to(), .half() or "
                "load_state_dict(assign=True)) after the graph was captured; build a new GraphedTrainStep"
            )
        if state != self._ptrs[2]:
            raise RuntimeError(
                "the optimizer's state was replaced (e.g. optimizer.load_state_dict()) after the graph "
                "was captured, and the graph would go on updating the old tensors; build a new "
                "GraphedTrainStep after loading"
            )
        if self._hyperparameters() != self._hyper:
            raise ValueError(
                "an optimizer hyperparameter given as a Python number changed after the capture, "
                "which the graph cannot see; give it as a tensor (e.g. lr=torch.tensor(1e-3, "
                "device='cuda')) and update that in place, or build a new GraphedTrainStep"
            )

    def _capture(self, x: torch.Tensor, target: torch.Tensor) -> None:
        # Everything is kept only once the capture succeeded: a failed one (a loss_fn that reads a
        # value with .item(), say) leaves the stepper as it was, and the next call tries again.
        static_x, static_target = torch.empty_like(x), torch.empty_like(target)  # filled at each call
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=capture_stream(self.device)):
            loss = self._step(static_x, static_target)  # recorded, not run
        self._x, self._target, self._loss, self._graph = static_x, static_target, loss, graph
        self._ptrs, self._hyper, self._modes_captured = self._memory(), self._hyperparameters(), self._modes()
        self.graphed = True

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Train on one batch.

        Parameters
        ----------
        x : torch.Tensor
            The model's input, on its device.
        target : torch.Tensor
            What ``loss_fn`` compares the output with.

        Returns
        -------
        torch.Tensor
            The batch's loss (before the update), a new scalar tensor.
        """
        self._check_batch(x, target)
        if self.device.type != "cuda":
            loss = self._step(x, target)
            self.steps += 1
            return loss
        with torch.cuda.device(self.device):
            if self._graph is None and self.steps < self.warmup:
                with on_capture_stream(self.device):  # capture needs its warm-up off the default stream
                    loss = self._step(x, target)
                loss.record_stream(torch.cuda.current_stream())  # handed to the caller's stream
                self.steps += 1
                return loss
            if self._graph is None:
                self._capture(x, target)
            else:
                self._check_unchanged()
            self._x.copy_(x)
            self._target.copy_(target)
            self._graph.replay()
            self.steps += 1
            return self._loss.clone()
