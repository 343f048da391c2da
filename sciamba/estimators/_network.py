"""The torch module the estimators train: input embedding, backbone, head.

The sequence model itself comes from :func:`sciamba.nn.make_backbone`; this
module only adds what turns it into a classifier, a regressor or a
forecaster:

* an input projection from the channels (plus, for backbones that cannot take
  gaps, two features encoding the sampling: an observed flag and
  ``log(gap)``) to ``d_model``, zeroed at unobserved steps so a gap-aware
  backbone leaves its state untouched there; or a convolutional stem before
  the backbone (pooled models only): multi-scale convolutions beside the
  projection (:class:`ConvStem`) or InceptionTime-style blocks with a
  residual shortcut (:class:`InceptionStem`, the classifier's default);
* a head: masked mean and max pooling over the observed steps, with the
  outputs at the first and last observed steps, optional dropout, then a
  linear layer (``pooled=True``, classification and regression), or a linear
  layer at every step giving the next ``horizon`` values (forecasting).

:class:`ProbabilityAverage` joins several trained classification networks
into one module whose output is the log of their mean class probabilities
(the classifier's ``n_estimators``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = [
    "SeriesNetwork", "ConvStem", "InceptionStem", "MaskedBatchNorm", "ProbabilityAverage",
    "build_backbone", "network_from_config",
]


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


class MaskedBatchNorm(nn.Module):
    r"""Batch normalization of ``(B, L, D)`` features over the observed steps only.

    In training, each channel is normalized by the mean and (biased) variance
    of its values at the observed steps of the batch,

    .. math:: \hat h_{btd} = \gamma_d \frac{h_{btd} - \mu_d}{\sqrt{\sigma_d^2 + \epsilon}} + \beta_d,
              \qquad \mu_d = \frac{\sum_{bt} m_{bt} h_{btd}}{\sum_{bt} m_{bt}},
              \quad \sigma_d^2 = \frac{\sum_{bt} m_{bt} (h_{btd} - \mu_d)^2}{\sum_{bt} m_{bt}},

    and running averages of :math:`\mu` and of the unbiased variance are
    kept (momentum 0.1) for evaluation, as :class:`torch.nn.BatchNorm1d`
    does [1]_. Unobserved steps (padding in front of shorter series) neither
    enter the statistics nor matter downstream (the caller zeroes them): a
    batch of fully observed series is normalized exactly as
    :class:`torch.nn.BatchNorm1d` would.

    Parameters
    ----------
    d : int
        Channels.
    eps : float, optional
        :math:`\epsilon`.
    momentum : float, optional
        Weight of the newest batch in the running statistics.

    References
    ----------
    .. [1] S. Ioffe and C. Szegedy, "Batch Normalization: Accelerating Deep
           Network Training by Reducing Internal Covariate Shift", ICML 2015,
           arXiv:1502.03167.

    Examples
    --------
    >>> import torch
    >>> bn = MaskedBatchNorm(4)
    >>> h, mask = torch.randn(3, 10, 4), torch.ones(3, 10, 1)
    >>> out = bn(h, mask)
    >>> bool(out.mean(dim=(0, 1)).abs().max() < 1e-5)
    True
    """

    def __init__(self, d: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("running_mean", torch.zeros(d))
        self.register_buffer("running_var", torch.ones(d))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalize ``h`` ``(B, L, D)``; ``mask`` ``(B, L, 1)`` is 1 at observed steps."""
        n = mask.sum()  # observed (series, step) pairs
        if self.training and n > 1:
            mean = (h * mask).sum(dim=(0, 1)) / n  # (D)
            var = (((h - mean) * mask) ** 2).sum(dim=(0, 1)) / n  # (D)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                unbiased = var.detach() * (n / (n - 1))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var  # (D)
        return (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias  # (B L D)


class _InceptionBlock(nn.Module):
    """One inception block ``(B, L, c_in) -> (B, L, d)``, normalized, before its activation."""

    def __init__(self, c_in: int, d: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.kernels = kernels
        width = d // (len(kernels) + 1)
        # A bottleneck only helps when there are several channels to mix
        # (InceptionTime skips it for univariate input).
        self.bottleneck = nn.Linear(c_in, d, bias=False) if c_in > 1 else None
        c_conv = d if c_in > 1 else c_in
        self.convs = nn.ModuleList(nn.Conv1d(c_conv, width, k, bias=False) for k in kernels)
        self.pool_proj = nn.Linear(c_in, d - width * len(kernels), bias=False)
        self.norm = MaskedBatchNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = x if self.bottleneck is None else self.bottleneck(x)  # (B L c)
        zt = z.transpose(1, 2)  # (B c L)
        feats = []
        for k, conv in zip(self.kernels, self.convs):
            padded = nn.functional.pad(zt, ((k - 1) // 2, k // 2))  # (B c L+k-1)
            feats.append(conv(padded).transpose(1, 2))  # (B L w)
        # Max over each step and its observed neighbours: unobserved steps
        # (and the ends) take no part, so padding in front changes nothing.
        observed = mask > 0  # (B L 1)
        low = torch.finfo(x.dtype).min
        pooled = nn.functional.max_pool1d(
            x.masked_fill(~observed, low).transpose(1, 2), 3, stride=1, padding=1
        ).transpose(1, 2)  # (B L c_in)
        pooled = torch.where(observed, pooled, torch.zeros_like(pooled))  # (B L c_in)
        feats.append(self.pool_proj(pooled))  # (B L d-mw)
        return self.norm(torch.cat(feats, dim=-1), mask)  # (B L d)


class InceptionStem(nn.Module):
    r"""InceptionTime-style convolutional input embedding ``(B, L, C) -> (B, L, d_model)``.

    ``depth`` inception blocks [1]_ in a row, each: a bottleneck (a linear
    map of the channels to ``d_model``; skipped when the input has one
    channel), parallel centred convolutions of the given widths on it and a
    max-pool (width 3) of the block input followed by a linear map, all
    concatenated to ``d_model`` channels (``d_model // (m + 1)`` per
    convolution, the rest to the pool branch; the max-pool reads observed
    steps only), batch-normalized over the
    observed steps (:class:`MaskedBatchNorm`) and passed through a ReLU.
    A residual shortcut, a normalized linear map of the input, is added
    before the last ReLU:

    .. math:: e = \mathrm{ReLU}\big(B_{\text{depth}} \circ \cdots \circ B_1(x)
              + \mathrm{BN}(W_s x)\big).

    Convolution inputs are zeroed at unobserved steps (the leading padding
    of shorter series), so every block sees them as the zero padding of a
    convolution. The convolutions are centred (``(k - 1) // 2`` steps before,
    ``k // 2`` after): for non-causal (pooled) models only. They count steps,
    not time: with gaps, neighbours are the adjacent observations.

    Parameters
    ----------
    n_in : int
        Input features per step.
    d_model : int
        Output width; at least ``len(kernels) + 1``.
    kernels : sequence of int, optional
        Convolution widths (positive); InceptionTime uses 10, 20, 40 (the
        odd 9, 19, 39 here centre exactly).
    depth : int, optional
        Inception blocks (InceptionTime's residual unit has 3).

    References
    ----------
    .. [1] H. Ismail Fawaz et al., "InceptionTime: Finding AlexNet for Time
           Series Classification", Data Min. Knowl. Disc. 34, 1936-1962
           (2020), arXiv:1909.04939.

    Examples
    --------
    >>> import torch
    >>> stem = InceptionStem(1, 8, (3, 9), depth=2)
    >>> stem(torch.zeros(2, 50, 1), torch.ones(2, 50, 1)).shape
    torch.Size([2, 50, 8])
    """

    def __init__(
        self, n_in: int, d_model: int, kernels: tuple[int, ...] = (9, 19, 39), depth: int = 3
    ) -> None:
        super().__init__()
        self.kernels = tuple(int(k) for k in kernels)
        if not self.kernels or min(self.kernels) < 1:
            raise ValueError(f"InceptionStem needs positive kernel widths; got {kernels!r}.")
        if d_model < len(self.kernels) + 1:
            raise ValueError(
                f"An inception stem with {len(self.kernels)} kernels needs d_model >= "
                f"{len(self.kernels) + 1} (one channel per branch at least); got d_model={d_model}."
            )
        if depth < 1:
            raise ValueError(f"InceptionStem needs depth >= 1; got {depth}.")
        self.blocks = nn.ModuleList(
            _InceptionBlock(n_in if i == 0 else d_model, d_model, self.kernels) for i in range(depth)
        )
        self.shortcut = nn.Linear(n_in, d_model, bias=False)
        self.shortcut_norm = MaskedBatchNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Embed ``x`` ``(B, L, C)``, 0 where ``mask`` ``(B, L, 1)`` is 0; returns ``(B, L, d_model)``."""
        h = x  # (B L C)
        for i, block in enumerate(self.blocks):
            h = block(h, mask)  # (B L D)
            if i < len(self.blocks) - 1:
                h = torch.relu(h) * mask  # (B L D): zero padding for the next block
        return torch.relu(h + self.shortcut_norm(self.shortcut(x), mask))  # (B L D)


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
        Kernel widths of a convolutional input embedding (pooled models
        only: its convolutions look ahead); empty: a linear embedding.
    stem_type : {"multiscale", "inception"}, optional
        :class:`ConvStem` or :class:`InceptionStem` (when ``stem`` is given).
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
        stem_type: str = "multiscale",
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
        if stem_type not in ("multiscale", "inception"):
            raise ValueError(f"stem_type must be 'multiscale' or 'inception'; got {stem_type!r}.")
        self.embed_takes_mask = bool(stem) and stem_type == "inception"
        if not stem:
            self.embed = nn.Linear(n_in, d_model)
        elif stem_type == "inception":
            self.embed = InceptionStem(n_in, d_model, stem)
        else:
            self.embed = ConvStem(n_in, d_model, stem)
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
        if self.embed_takes_mask:
            h = self.embed(x * mask, mask) * mask  # (B L D): exactly 0 where unobserved
        else:
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


class ProbabilityAverage(nn.Module):
    r"""Ensemble of classification networks: the log of their mean class probabilities.

    For members :math:`f_1, \dots, f_M` returning logits, the output is

    .. math:: \log \bar p(x), \qquad \bar p(x) = \frac{1}{M} \sum_{m=1}^{M}
              \operatorname{softmax}\big(f_m(x)\big),

    computed as :math:`\operatorname{logsumexp}_m \log\operatorname{softmax}
    f_m(x) - \log M`. Since :math:`\bar p` sums to one, a softmax of the
    output gives back :math:`\bar p` exactly, so the module stands wherever
    a single network's logits are expected (soft voting of independently
    trained networks, as the InceptionTime ensemble does [1]_).

    Parameters
    ----------
    members : sequence of torch.nn.Module
        Networks ``(x, gaps) -> (B, n_classes)`` logits.

    References
    ----------
    .. [1] H. Ismail Fawaz et al., "InceptionTime: Finding AlexNet for Time
           Series Classification", Data Min. Knowl. Disc. 34, 1936-1962
           (2020), arXiv:1909.04939.

    Examples
    --------
    >>> import torch
    >>> nets = [SeriesNetwork(1, 3, backbone="lstm", d_model=4, n_layers=1, pooled=True)
    ...         for _ in range(2)]
    >>> ens = ProbabilityAverage(nets).eval()
    >>> x, gaps = torch.randn(5, 20, 1), torch.ones(5, 20)
    >>> mean = sum(torch.softmax(n(x, gaps), -1) for n in nets) / 2
    >>> torch.allclose(torch.softmax(ens(x, gaps), -1), mean)
    True
    """

    def __init__(self, members: Any) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        if len(self.members) < 1:
            raise ValueError("ProbabilityAverage needs at least one member network.")

    def forward(self, x: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """Log mean probabilities ``(B, n_classes)`` of ``x`` ``(B, L, C)`` with ``gaps`` ``(B, L)``."""
        logp = torch.stack(
            [torch.log_softmax(m(x, gaps), dim=-1) for m in self.members]
        )  # (M B K)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))  # (B K)


def network_from_config(config: dict[str, Any]) -> nn.Module:
    """A freshly initialized network for ``config``.

    ``config`` holds :class:`SeriesNetwork` keywords, plus ``n_members``
    (an int) for a :class:`ProbabilityAverage` of that many of them.
    """
    config = dict(config)
    n_members = config.pop("n_members", None)
    if n_members is None:
        return SeriesNetwork(**config)
    return ProbabilityAverage([SeriesNetwork(**config) for _ in range(int(n_members))])
