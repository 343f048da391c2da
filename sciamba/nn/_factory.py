"""One constructor for every backbone: ``make_backbone(name, d_model, n_layers, ...)``."""

from __future__ import annotations

from torch import nn

from ._checks import check_positive_int
from ._lstm import LSTM
from ._mamba import Mamba
from ._s4d import S4D
from ._transformer import TransformerEncoder

__all__ = ["make_backbone", "BACKBONES"]

#: Names accepted by :func:`make_backbone`.
BACKBONES = ("mamba", "s4d", "transformer", "lstm")


def make_backbone(
    name: str,
    d_model: int,
    n_layers: int,
    *,
    d_state: int = 16,
    expand: int = 2,
    bidirectional: bool = False,
    causal: bool = True,
    dropout: float = 0.0,
    **kwargs,
) -> nn.Module:
    """Build a sequence backbone ``(batch, L, d_model) -> (batch, L, d_model)``.

    Every backbone has ``forward(x, gaps=None)`` and a boolean attribute
    ``supports_gaps``; those without it raise ValueError when given gaps.

    Parameters
    ----------
    name : {"mamba", "s4d", "transformer", "lstm"}
        :class:`Mamba`, :class:`S4D`, :class:`TransformerEncoder` or :class:`LSTM`.
    d_model : int
        Model width.
    n_layers : int
        Number of layers.
    d_state : int, optional
        State size per channel (Mamba's ``N``, S4D's real state size).
        Unused by the Transformer and the LSTM.
    expand : int, optional
        Mamba's inner expansion; unused by the others.
    bidirectional : bool, optional
        Process the reversed sequence too (Mamba, S4D, LSTM) -- a non-causal
        model; for the Transformer it means attention without a causal mask.
    causal : bool, optional
        For the Transformer: mask attention to the past (ignored when
        ``bidirectional``). Recurrent and convolutional backbones are causal
        unless bidirectional, whatever this says: ``causal=False`` permits
        looking ahead, it does not require it.
    dropout : float, optional
        Dropout on residual branches (between layers for the LSTM).
    **kwargs
        Passed to the backbone's constructor (e.g. ``d_conv``, ``backend`` for
        Mamba; ``n_heads``, ``positional``, ``max_len`` for the Transformer;
        ``init`` for S4D).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or invalid sizes.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import make_backbone
    >>> x = torch.randn(2, 12, 32)
    >>> for name in ("mamba", "s4d", "transformer", "lstm"):
    ...     net = make_backbone(name, 32, 2)
    ...     print(name, tuple(net(x).shape), net.supports_gaps)
    mamba (2, 12, 32) True
    s4d (2, 12, 32) False
    transformer (2, 12, 32) False
    lstm (2, 12, 32) False
    """
    if not isinstance(name, str) or name.lower() not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names are {', '.join(map(repr, BACKBONES))}")
    name = name.lower()
    d_model = check_positive_int("d_model", d_model)
    n_layers = check_positive_int("n_layers", n_layers)
    if name == "mamba":
        return Mamba(
            d_model, n_layers, d_state=d_state, expand=expand, bidirectional=bidirectional,
            dropout=dropout, **kwargs,
        )
    if name == "s4d":
        return S4D(d_model, n_layers, d_state=d_state, bidirectional=bidirectional, dropout=dropout, **kwargs)
    if name == "transformer":
        return TransformerEncoder(
            d_model, n_layers, causal=bool(causal) and not bidirectional, dropout=dropout, **kwargs
        )
    return LSTM(d_model, n_layers, bidirectional=bidirectional, dropout=dropout, **kwargs)
