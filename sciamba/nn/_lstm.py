"""LSTM backbone behind the common ``(batch, L, d_model)`` interface."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_dropout, check_positive_int, check_sequence, reject_gaps

__all__ = ["LSTM"]


class LSTM(nn.Module):
    """Stacked LSTM, ``(batch, L, d_model) -> (batch, L, d_model)``.

    A thin wrapper of :class:`torch.nn.LSTM` (cuDNN on the GPU) with the
    interface of the other backbones: hidden size ``d_model``; a bidirectional
    LSTM concatenates both directions and projects back to ``d_model``.

    Parameters
    ----------
    d_model : int
        Input and output width.
    n_layers : int
        Number of stacked LSTM layers.
    bidirectional : bool, optional
        Also run each layer over the reversed sequence (non-causal).
    dropout : float, optional
        Dropout between layers (as in :class:`torch.nn.LSTM`).

    Attributes
    ----------
    supports_gaps : bool
        False: ``gaps`` raises ValueError.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory",
           Neural Computation 9(8), 1997.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import LSTM
    >>> LSTM(8, 2)(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    supports_gaps = False

    def __init__(self, d_model: int, n_layers: int, *, bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.n_layers = check_positive_int("n_layers", n_layers)
        check_dropout(dropout)
        self.bidirectional = bool(bidirectional)
        self.lstm = nn.LSTM(
            d_model,
            d_model,
            num_layers=n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
            bidirectional=self.bidirectional,
        )
        self.proj = nn.Linear(2 * d_model, d_model) if self.bidirectional else None

    def forward(self, x: torch.Tensor, gaps: torch.Tensor | None = None) -> torch.Tensor:
        reject_gaps(gaps, "LSTM")
        check_sequence(x, self.d_model, "LSTM")
        y, _ = self.lstm(x)  # (b L d) or (b L 2d)
        return self.proj(y) if self.proj is not None else y
