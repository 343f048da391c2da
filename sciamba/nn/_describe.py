"""Parameter counts and forward FLOPs per token of a backbone, as a small table."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from torch import nn

from ._checks import check_positive_int
from ._mamba import MambaBlock
from ._s4d import S4DLayer
from ._transformer import _Block

__all__ = ["describe", "ModelDescription"]


@dataclass
class ModelDescription:
    """What :func:`describe` returns: per-component rows and totals.

    Attributes
    ----------
    name : str
        The model's class name.
    seq_len : int
        Sequence length the FLOPs refer to (attention and FFT costs depend on it).
    rows : dict
        ``component -> (params, matmul_flops, other_flops)``, where components
        are module paths with the layer indices removed (summed over layers).
    """

    name: str
    seq_len: int
    rows: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Trainable and frozen parameters, all of them."""
        return sum(r[0] for r in self.rows.values())

    @property
    def matmul_flops_per_token(self) -> int:
        """Matrix products and convolutions (what a FLOP counter of torch counts)."""
        return sum(r[1] for r in self.rows.values())

    @property
    def flops_per_token(self) -> int:
        """All forward FLOPs per token: matrix products plus scans, FFTs, gates and norms."""
        return sum(r[1] + r[2] for r in self.rows.values())

    def __str__(self) -> str:
        width = max(len("component"), *(len(k) for k in self.rows))
        head = f"{self.name}: forward FLOPs per token at L = {self.seq_len}"
        lines = [head, f"{'component':<{width}}  {'params':>12}  {'matmul FLOPs':>14}  {'other FLOPs':>12}"]
        lines.append("-" * len(lines[-1]))
        for k, (p, m, o) in self.rows.items():
            lines.append(f"{k:<{width}}  {p:>12,}  {m:>14,}  {o:>12,}")
        lines.append("-" * len(lines[1]))
        lines.append(
            f"{'total':<{width}}  {self.n_params:>12,}  {self.matmul_flops_per_token:>14,}  "
            f"{self.flops_per_token - self.matmul_flops_per_token:>12,}"
        )
        lines.append(f"total FLOPs per token: {self.flops_per_token:,}")
        return "\n".join(lines)

    _repr_pretty_ = lambda self, p, cycle: p.text(str(self))  # noqa: E731  (IPython display)


def _component(name: str) -> str:
    parts = [p for p in name.split(".") if not re.fullmatch(r"\d+", p)]
    return ".".join(parts) or "(root)"


def _own_flops(mod: nn.Module, L: int) -> tuple[int, int]:
    """(matmul, other) forward FLOPs per token of ``mod`` itself (not its children)."""
    if isinstance(mod, nn.Linear):
        return 2 * mod.in_features * mod.out_features, 0
    if isinstance(mod, nn.Conv1d):
        k = mod.kernel_size[0]
        return 2 * (mod.in_channels // mod.groups) * k * mod.out_channels, 0
    if isinstance(mod, MambaBlock):
        E, N = mod.d_inner, mod.d_state
        # Per (channel, state): exp(dt A) 2, dt B u 2, state update 2, C h 2;
        # per channel: softplus 3, D skip 2, silu(z) gate 5, conv silu 4.
        return 0, 8 * E * N + 14 * E
    if isinstance(mod, _Block):
        d = mod.qkv.in_features
        # QK^T and AV against all L keys (a causal mask halves the useful work on
        # average, but the kernels of torch count the full product), softmax 5 L.
        return 4 * L * d, 5 * L * mod.n_heads
    if isinstance(mod, S4DLayer):
        H = mod.D.shape[0]
        n_fft = 2 * L
        fft = 2.5 * n_fft * math.log2(n_fft)  # real FFT of n points ~ 2.5 n log2 n flops
        convs = 1 if mod.kernel_rev is None else 2
        # Per conv: FFT of u, of K, inverse FFT, and the pointwise complex product
        # (6 flops per frequency), per channel and per token (divided by L); the kernel
        # itself: n complex exponentials and multiply-adds per (channel, position).
        n = mod.kernel.A_imag.shape[1]
        per_token = convs * (3 * fft + 6 * (n_fft // 2 + 1)) / L + convs * 16 * n
        return 0, int(H * per_token + 8 * H)
    if isinstance(mod, nn.LSTM):
        dirs = 2 if mod.bidirectional else 1
        h, total = mod.hidden_size, 0
        for layer in range(mod.num_layers):
            d_in = mod.input_size if layer == 0 else h * dirs
            total += dirs * 2 * 4 * h * (d_in + h)
        return total, dirs * mod.num_layers * 10 * h  # gate nonlinearities and cell update
    if isinstance(mod, (nn.LayerNorm,)) or type(mod).__name__ == "RMSNorm":
        return 0, 4 * sum(p.numel() for p in mod.parameters(recurse=False))
    return 0, 0


_MIXER_LABELS = {MambaBlock: " [selective scan]", _Block: " [attention]", S4DLayer: " [FFT conv]"}


def describe(model: nn.Module, seq_len: int = 1024) -> ModelDescription:
    """Parameters and forward FLOPs per token of a model, per component.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; the sciamba backbones (:class:`Mamba`, :class:`S4D`,
        :class:`TransformerEncoder`, :class:`LSTM`) have their sequence mixers
        counted too (selective scan, attention, FFT convolution, LSTM gates).
    seq_len : int, optional
        Sequence length for the costs that depend on it: attention (linear in
        L per token) and FFT convolution (logarithmic).

    Returns
    -------
    ModelDescription
        Prints as a table; ``n_params``, ``flops_per_token`` and
        ``matmul_flops_per_token`` hold the totals.

    Notes
    -----
    A linear layer costs :math:`2\\,n_{in} n_{out}` FLOPs per token (one
    multiply and one add per weight); the selective scan about
    :math:`8 E N` (discretization, update and read-out of an
    :math:`E \\times N` state); full attention :math:`4 L d` per layer. The
    ``matmul`` column matches :class:`torch.utils.flop_counter.FlopCounterMode`
    on the same forward pass (tested). Mamba's cost per token does not depend
    on L; the Transformer's grows linearly with it.

    Examples
    --------
    >>> from sciamba.nn import Mamba, describe
    >>> d = describe(Mamba(64, 2))
    >>> d.n_params == sum(p.numel() for p in Mamba(64, 2).parameters())
    True
    >>> print(str(d).splitlines()[0])
    Mamba: forward FLOPs per token at L = 1024
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"describe expects a torch.nn.Module, got {type(model).__name__}")
    seq_len = check_positive_int("seq_len", seq_len)
    out = ModelDescription(type(model).__name__, seq_len)
    for name, mod in model.named_modules():
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        mm, other = _own_flops(mod, seq_len)
        if own == 0 and mm == 0 and other == 0:
            continue
        key = _component(name) + _MIXER_LABELS.get(type(mod), "")
        p0, m0, o0 = out.rows.get(key, (0, 0, 0))
        out.rows[key] = (p0 + own, m0 + mm, o0 + other)
    return out
