"""The torch module the estimators train: input embedding, backbone, head.

The sequence model itself comes from :func:`sciamba.nn.make_backbone`; this
module only adds what turns it into a classifier, a regressor or a
forecaster:

* an input projection from the channels (plus, for backbones that cannot take
  gaps, two features encoding the sampling: an observed flag and
  ``log(gap)``) to ``d_model``, zeroed at unobserved steps so a gap-aware
  backbone leaves its state untouched there;
* a head: masked mean and max pooling over the observed steps, with the
  outputs at the first and last observed steps, then a linear layer (``pooled=True``, classification and regression), or a linear layer at
  every step giving the next ``horizon`` values (forecasting).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SeriesNetwork", "build_backbone"]


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
        **backbone_kwargs: Any,
    ) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.backbone = build_backbone(backbone, d_model, n_layers, **backbone_kwargs)
        self.use_gaps = bool(getattr(self.backbone, "supports_gaps", False))
        # Without gap support the sampling pattern enters as input features.
        n_in = n_channels + (0 if self.use_gaps else 2)
        self.embed = nn.Linear(n_in, d_model)
        self.pooled = pooled
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
        out = self.head(torch.cat([mean, maxed, *edges], dim=-1))  # (B n_outputs)
        if self.highway is not None:
            out = out + self.highway(values.reshape(values.shape[0], -1))  # (B n_outputs)
        return out
