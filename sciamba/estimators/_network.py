"""The torch module the estimators train: input embedding, backbone, head.

The sequence model itself comes from :func:`sciamba.nn.make_backbone`; this
module only adds what turns it into a classifier, a regressor or a
forecaster:

* an input projection from the channels (plus, for backbones that cannot take
  gaps, two features encoding the sampling: an observed flag and
  ``log(gap)``) to ``d_model``, zeroed at unobserved steps so a gap-aware
  backbone leaves its state untouched there; optionally with multi-scale
  convolutions beside it (:class:`ConvStem`, the classifier's default);
* a head: masked mean and max pooling over the observed steps, with the
  outputs at the first and last observed steps, optional dropout, then a
  linear layer (``pooled=True``, classification and regression), or a linear
  layer at every step giving the next ``horizon`` values (forecasting).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SeriesNetwork", "ConvStem", "build_backbone"]


def build_backbone(name: str, d_model: int, n_layers: int, **kwargs: Any) -> nn.Module:
    """Build a :mod:`sciamba.nn` backbone ``(B, L, d_model) -> (B, L, d_model)``."""
    from sciamba.nn import make_backbone

    return make_backbone(name, d_model, n_layers, **kwargs)


def _last_observations(values: torch.Tensor, observed: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` most recent observations at each step, newest first, 0 before the first.

    Lags count observations, not time steps, so a series with gaps has the same
    autoregressive input as its gap-free compaction (the backbone skips gaps
    the same way).

    Parameters
    ----------
    values : torch.Tensor
        ``(B, L, C)``.
    observed : torch.Tensor
        ``(B, L)`` bool.
    k : int
        Number of lags.

    Returns
    -------
    torch.Tensor
        ``(B, L, C, k)``.
    """
    B, L, C = values.shape
    # Observed steps first, in time order (a stable sort of the "missing" flag).
    order = torch.sort((~observed).to(torch.int8), dim=1, stable=True).indices  # (B L)
    compact = torch.gather(values, 1, order.unsqueeze(-1).expand(B, L, C))  # (B L C)
    count = torch.cumsum(observed.to(torch.int64), dim=1)  # (B L) observations so far
    idx = count.unsqueeze(-1) - 1 - torch.arange(k, device=values.device)  # (B L k)
    valid = idx >= 0  # (B L k)
    gathered = torch.gather(
        compact.unsqueeze(2).expand(B, L, k, C), 1,
        idx.clamp_min(0).unsqueeze(-1).expand(B, L, k, C),
    )  # (B L k C)
    return (gathered * valid.unsqueeze(-1).to(values.dtype)).transpose(2, 3)  # (B L C k)


class ConvStem(nn.Module):
    r"""Multi-scale convolutional input embedding ``(B, L, C) -> (B, L, d_model)``.

    A linear projection of each step and, beside it, one centred convolution
    per kernel size (each ``C -> d_model`` channels, GELU), concatenated and
    mixed back to ``d_model`` by a linear layer:

    .. math:: e_t = W_m \big[\, W x_t \;;\; \mathrm{GELU}(K_1 * x)_t \;;\; \dots \;;\;
              \mathrm{GELU}(K_m * x)_t \,\big] + b_m .

    Kernels of several widths see local shape (slopes, peaks, notches) at
    several scales before the recurrent backbone reads the sequence, as the
    parallel convolutions of InceptionTime [1]_ do. The convolutions are
    centred (zero padding, ``(k - 1) // 2`` steps before and ``k // 2``
    after), so the embedding of a step
    reads its neighbours on both sides: for non-causal (pooled) models only.
    They count steps, not time: with gaps, neighbours are the adjacent
    observations.

    Parameters
    ----------
    n_in : int
        Input features per step.
    d_model : int
        Output width.
    kernels : sequence of int
        Convolution widths (positive).

    References
    ----------
    .. [1] H. Ismail Fawaz et al., "InceptionTime: Finding AlexNet for Time
           Series Classification", Data Min. Knowl. Disc. 34, 1936-1962
           (2020), arXiv:1909.04939.

    Examples
    --------
    >>> import torch
    >>> stem = ConvStem(1, 8, (3, 9))
    >>> stem(torch.zeros(2, 50, 1)).shape
    torch.Size([2, 50, 8])
    """

    def __init__(self, n_in: int, d_model: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.kernels = tuple(int(k) for k in kernels)
        self.linear = nn.Linear(n_in, d_model)
        self.convs = nn.ModuleList(nn.Conv1d(n_in, d_model, k) for k in self.kernels)
        self.mix = nn.Linear(d_model * (1 + len(self.kernels)), d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``x`` ``(B, L, C)``; returns ``(B, L, d_model)``."""
        xt = x.transpose(1, 2)  # (B C L)
        feats = [self.linear(x)]  # [(B L D)]
        for k, conv in zip(self.kernels, self.convs):
            # "Same" zero padding; an even kernel's extra zero goes on the right.
            padded = nn.functional.pad(xt, ((k - 1) // 2, k // 2))  # (B C L+k-1)
            feats.append(nn.functional.gelu(conv(padded)).transpose(1, 2))  # (B L D)
        return self.mix(torch.cat(feats, dim=-1))  # (B L D)


class SeriesNetwork(nn.Module):
    """Embedding, backbone and head around a :mod:`sciamba.nn` backbone.

    Parameters
    ----------
    n_channels : int
        Channels of the input series.
    n_outputs : int
        Outputs per series (``pooled=True``) or per time step (``pooled=False``).
    backbone : str
        Name for :func:`sciamba.nn.make_backbone`.
    d_model, n_layers : int
        Backbone width and depth.
    pooled : bool
        Pool over time (series -> vector) or keep one output per step.
    highway : int, optional
        Length of the linear highway beside the network (0: none).
    out_shape : tuple of int, optional
        Per-step output shape for the autoregressive highway.
    stem : tuple of int, optional
        Kernel widths of a :class:`ConvStem` input embedding (pooled models
        only: its convolutions look ahead); empty: a linear embedding.
    head_dropout : float, optional
        Dropout on the pooled features before the output layer (pooled only).
    **backbone_kwargs
        Passed to :func:`sciamba.nn.make_backbone`.

    References
    ----------
    .. [1] G. Lai, W.-C. Chang, Y. Yang and H. Liu, "Modeling Long- and
           Short-Term Temporal Patterns with Deep Neural Networks", SIGIR 2018,
           arXiv:1703.07015.
    """

    def __init__(
        self,
        n_channels: int,
        n_outputs: int,
        *,
        backbone: str,
        d_model: int,
        n_layers: int,
        pooled: bool,
        highway: int = 0,
        out_shape: tuple[int, ...] | None = None,
        stem: tuple[int, ...] = (),
        head_dropout: float = 0.0,
        **backbone_kwargs: Any,
    ) -> None:
        super().__init__()
        if (stem or head_dropout) and not pooled:
            raise ValueError(
                "stem and head_dropout apply to pooled (series -> vector) networks only; "
                "a per-step network must not look ahead."
            )
        self.n_channels = n_channels
        self.backbone = build_backbone(backbone, d_model, n_layers, **backbone_kwargs)
        self.use_gaps = bool(getattr(self.backbone, "supports_gaps", False))
        # Without gap support the sampling pattern enters as input features.
        n_in = n_channels + (0 if self.use_gaps else 2)
        self.embed = ConvStem(n_in, d_model, stem) if stem else nn.Linear(n_in, d_model)
        self.pooled = pooled
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout else None
        self.head = nn.Linear(4 * d_model if pooled else d_model, n_outputs)
        # Linear "highway" beside the network (LSTNet, [1]): pooled, a linear map
        # of the whole (fixed-width) series; per step, an autoregression on the
        # last ``highway`` values of each channel. Zero at initialization.
        self.highway_len = int(highway)
        self.out_shape = out_shape  # per step (horizon, C, Q) for the AR highway
        self.highway = None
        if self.highway_len:
            if pooled:
                self.highway = nn.Linear(n_channels * self.highway_len, n_outputs)
            else:
                self.highway = nn.Linear(self.highway_len, out_shape[0])
            nn.init.zeros_(self.highway.weight)
            nn.init.zeros_(self.highway.bias)

    def forward(self, x: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """Map series to outputs.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, L, C)`` standardized values, 0 at unobserved steps.
        gaps : torch.Tensor
            ``(B, L)`` elapsed time since the previous observation, 0 where
            nothing was observed.

        Returns
        -------
        torch.Tensor
            ``(B, n_outputs)`` when pooled, else ``(B, L, n_outputs)``.
        """
        values = x  # (B L C)
        observed = gaps > 0  # (B L)
        mask = observed.unsqueeze(-1).to(x.dtype)  # (B L 1)
        if not self.use_gaps:
            log_gap = torch.log(torch.where(observed, gaps, torch.ones_like(gaps)))  # (B L)
            x = torch.cat([x, mask, log_gap.unsqueeze(-1)], dim=-1)  # (B L C+2)
        h = self.embed(x) * mask  # (B L D): exactly 0 where unobserved
        h = self.backbone(h, gaps=gaps) if self.use_gaps else self.backbone(h)  # (B L D)
        if not self.pooled:
            out = self.head(h)  # (B L n_outputs)
            if self.highway is None:
                return out
            B, L, _ = out.shape
            lags = _last_observations(values, observed, self.highway_len)  # (B L C k)
            ar = self.highway(lags).transpose(2, 3)  # (B L h C)
            out = out.reshape(B, L, *self.out_shape) + ar.unsqueeze(-1)  # (B L h C Q)
            return out.reshape(B, L, -1)
        count = mask.sum(dim=1).clamp_min(1.0)  # (B 1)
        mean = (h * mask).sum(dim=1) / count  # (B D)
        neg = torch.finfo(h.dtype).min
        maxed = h.masked_fill(~observed.unsqueeze(-1), neg).amax(dim=1)  # (B D)
        # The first and last observed steps carry where things happened, which
        # mean and max pooling forget.
        steps = torch.arange(h.shape[1], device=h.device)  # (L)
        first = torch.where(observed, steps, h.shape[1]).amin(dim=1)  # (B)
        last = torch.where(observed, steps, -1).amax(dim=1).clamp_min(0)  # (B)
        rows = torch.arange(h.shape[0], device=h.device)  # (B)
        edges = [h[rows, first.clamp_max(h.shape[1] - 1)], h[rows, last]]  # 2 x (B D)
        pooled = torch.cat([mean, maxed, *edges], dim=-1)  # (B 4D)
        if self.head_dropout is not None:
            pooled = self.head_dropout(pooled)  # (B 4D)
        out = self.head(pooled)  # (B n_outputs)
        if self.highway is not None:
            out = out + self.highway(values.reshape(values.shape[0], -1))  # (B n_outputs)
        return out
