"""A pre-norm Transformer encoder on ``scaled_dot_product_attention``, with a KV cache."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_dropout, check_positive_int, check_sequence, reject_gaps

__all__ = ["TransformerEncoder", "TransformerState", "sinusoidal_positions"]


def sinusoidal_positions(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    r"""Sinusoidal position encodings of Vaswani et al. (2017).

    .. math::

        P_{t, 2i} = \sin(t / 10000^{2i/d}), \qquad P_{t, 2i+1} = \cos(t / 10000^{2i/d})

    Parameters
    ----------
    positions : torch.Tensor
        ``(L,)`` integer or float positions.
    d_model : int
        Encoding width (odd widths drop the last cosine).

    Returns
    -------
    torch.Tensor
        ``(L, d_model)`` float32.

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn._transformer import sinusoidal_positions
    >>> sinusoidal_positions(torch.arange(3), 4)[0]
    tensor([0., 1., 0., 1.])
    """
    pos = positions.to(torch.float32)[:, None]  # (L 1)
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(0, d_model, 2, device=pos.device, dtype=torch.float32) / d_model
    )  # (ceil(d/2),)
    angle = pos * freq  # (L ceil(d/2))
    out = torch.empty(pos.shape[0], d_model, device=pos.device, dtype=torch.float32)  # (L d)
    out[:, 0::2] = torch.sin(angle)
    out[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return out


@dataclass
class TransformerState:
    """KV cache of a causal :class:`TransformerEncoder`.

    Attributes
    ----------
    keys, values : list of torch.Tensor
        Per layer, ``(batch, n_heads, max_len, head_dim)`` buffers; the first
        ``length`` positions are filled.
    length : int
        Number of positions seen so far.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0

    @property
    def max_len(self) -> int:
        return self.keys[0].shape[2]


class _Block(nn.Module):
    """Pre-norm block: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.dropout = dropout

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, L, d = t.shape
        return t.view(b, L, self.n_heads, d // self.n_heads).transpose(1, 2)  # (b h L hd)

    def forward(
        self,
        x: torch.Tensor,
        causal: bool,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        b, L, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # 3 x (b L d)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (b h L hd)
        p = self.dropout if self.training else 0.0
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)  # (b h L hd)
        else:
            kc, vc = cache  # (b h max_len hd)
            kc[:, :, offset : offset + L] = k
            vc[:, :, offset : offset + L] = v
            keys, vals = kc[:, :, : offset + L], vc[:, :, : offset + L]  # (b h T hd)
            if L == 1 and p == 0.0 and q.dtype == torch.float32:
                # One new query sees every cached key: no mask. For float32, SDPA has no flash
                # kernel, and its memory-efficient one spreads its work over queries: with one
                # query per (batch, head) a few blocks stream the whole cache. Two batched
                # products read it far faster (H100, 2026-11-25, one layer, 4 heads of 64,
                # 8k cache, us: batch 8 913 -> 83, batch 64 1329 -> 793; the cache's read
                # floor 45 and 358). Half precision keeps SDPA, whose flash kernel is faster
                # there (bf16: 40 against 58, 189 against 213).
                s = torch.matmul(q, keys.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (b h 1 T)
                a = torch.matmul(torch.softmax(s, dim=-1), vals)  # (b h 1 hd)
            elif L == 1:
                a = F.scaled_dot_product_attention(q, keys, vals, dropout_p=p)
            else:
                qi = torch.arange(L, device=x.device)[:, None] + offset  # (L 1)
                kj = torch.arange(offset + L, device=x.device)[None, :]  # (1 T)
                a = F.scaled_dot_product_attention(q, keys, vals, attn_mask=kj <= qi, dropout_p=p)
        a = a.transpose(1, 2).reshape(b, L, d)  # (b L d)
        x = x + F.dropout(self.out(a), p, self.training)
        h = self.ff2(F.gelu(self.ff1(self.norm2(x))))  # (b L d)
        return x + F.dropout(h, p, self.training)


class TransformerEncoder(nn.Module):
    """Pre-norm Transformer encoder, ``(batch, L, d_model) -> (batch, L, d_model)``.

    Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`,
    which picks FlashAttention or memory-efficient attention on the GPU (a float32
    cached step, one query against the whole cache, uses two batched products
    instead: SDPA's float32 kernel left the GPU mostly idle there). A causal
    encoder also streams with a key-value cache (:meth:`allocate_state`,
    :meth:`step`), the baseline Mamba's O(1) recurrent step is compared against:
    a cached step costs O(t) time at position t and the cache O(L) memory.

    Parameters
    ----------
    d_model : int
        Model width; divisible by ``n_heads``.
    n_layers : int
        Number of blocks.
    n_heads : int, optional
        Attention heads. Default: ``max(1, d_model // 64)``.
    d_ff : int, optional
        Hidden width of the feed-forward network. Default ``4 * d_model``.
    causal : bool, optional
        Mask attention to the past (default True).
    positional : {"sinusoidal", "learned", "none"}, optional
        Position information added to the input. ``"learned"`` needs
        ``max_len``; sinusoidal encodings work at any length.
    max_len : int, optional
        Longest sequence for learned positions. Default 4096.
    dropout : float, optional
        Dropout on attention weights and on each residual branch.

    Attributes
    ----------
    supports_gaps : bool
        False: irregular sampling is not modelled; ``gaps`` raises ValueError.

    References
    ----------
    .. [1] A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    .. [2] R. Xiong et al., "On Layer Normalization in the Transformer
           Architecture", ICML 2020 (pre-norm).

    Examples
    --------
    >>> import torch
    >>> from sciamba.nn import TransformerEncoder
    >>> net = TransformerEncoder(32, 2, n_heads=4).eval()
    >>> x = torch.randn(2, 10, 32)
    >>> y = net(x)
    >>> y.shape
    torch.Size([2, 10, 32])
    >>> state = net.allocate_state(2, max_len=10)
    >>> y_t, state = net.step(x[:, 0], state)
    >>> torch.allclose(y_t, y[:, 0], atol=1e-5)
    True
    """

    supports_gaps = False

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        *,
        n_heads: int | None = None,
        d_ff: int | None = None,
        causal: bool = True,
        positional: str = "sinusoidal",
        max_len: int = 4096,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        d_model = check_positive_int("d_model", d_model)
        n_layers = check_positive_int("n_layers", n_layers)
        n_heads = max(1, d_model // 64) if n_heads is None else check_positive_int("n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        d_ff = 4 * d_model if d_ff is None else check_positive_int("d_ff", d_ff)
        if positional not in ("sinusoidal", "learned", "none"):
            raise ValueError(
                f"positional must be 'sinusoidal', 'learned' or 'none', got {positional!r}"
            )
        max_len = check_positive_int("max_len", max_len)
        check_dropout(dropout)
        self.d_model, self.n_layers, self.n_heads, self.d_ff = d_model, n_layers, n_heads, d_ff
        self.causal, self.positional, self.max_len = bool(causal), positional, max_len
        self.pos_emb = nn.Embedding(max_len, d_model) if positional == "learned" else None
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.layers = nn.ModuleList(_Block(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm_f = nn.LayerNorm(d_model)

    def _add_positions(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        L = x.shape[1]
        if self.positional == "none":
            return x
        if self.positional == "learned" and offset + L > self.max_len:
            raise ValueError(
                f"sequence of {offset + L} positions exceeds max_len={self.max_len} of the learned "
                "positions; build the encoder with a larger max_len or positional='sinusoidal'"
            )
        pos = torch.arange(offset, offset + L, device=x.device)  # (L,)
        p = self.pos_emb(pos) if self.pos_emb is not None else sinusoidal_positions(pos, self.d_model)
        return x + p.to(x.dtype)  # (b L d)

    def forward(
        self,
        x: torch.Tensor,
        gaps: torch.Tensor | None = None,
        *,
        state: TransformerState | None = None,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, TransformerState]:
        """Encode ``x`` ``(batch, L, d_model)``.

        With ``state`` (causal encoders only), ``x`` continues the sequence
        held in the KV cache; ``return_state`` returns the updated cache.
        """
        reject_gaps(gaps, "TransformerEncoder")
        check_sequence(x, self.d_model, "TransformerEncoder")
        if (state is not None or return_state) and not self.causal:
            raise ValueError("a KV cache needs a causal encoder (causal=True)")
        if return_state and state is None:
            state = self.allocate_state(
                x.shape[0], max_len=max(x.shape[1], self.max_len), device=x.device, dtype=x.dtype
            )
        offset = 0 if state is None else state.length
        if state is not None:
            self._check_state(state, x, x.shape[1])
        h = self._add_positions(x, offset)
        for i, layer in enumerate(self.layers):
            cache = None if state is None else (state.keys[i], state.values[i])
            h = layer(h, self.causal, cache, offset)
        h = self.norm_f(h)
        if state is not None:
            state.length = offset + x.shape[1]
        return (h, state) if return_state else h

    def allocate_state(
        self,
        batch: int,
        max_len: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> TransformerState:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` positions."""
        if not self.causal:
            raise ValueError("a KV cache needs a causal encoder (causal=True)")
        batch = check_positive_int("batch", batch)
        max_len = check_positive_int("max_len", self.max_len if max_len is None else max_len)
        p = next(self.parameters())
        device = p.device if device is None else device
        dtype = p.dtype if dtype is None else dtype
        shape = (batch, self.n_heads, max_len, self.d_model // self.n_heads)
        return TransformerState(
            keys=[torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers],
            values=[torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers],
        )

    def _check_state(self, state: TransformerState, x: torch.Tensor, n_new: int) -> None:
        if not isinstance(state, TransformerState):
            raise TypeError(f"state must be a TransformerState, got {type(state).__name__}")
        if state.keys[0].shape[0] != x.shape[0]:
            raise ValueError(f"state holds batch {state.keys[0].shape[0]}, input has batch {x.shape[0]}")
        if state.length + n_new > state.max_len:
            raise ValueError(
                f"KV cache full: {state.length} + {n_new} positions exceed max_len={state.max_len}; "
                "allocate a larger cache"
            )

    def step(self, x_t: torch.Tensor, state: TransformerState) -> tuple[torch.Tensor, TransformerState]:
        """One position ``x_t`` ``(batch, d_model)``; returns ``(y_t, state)``, the cache updated in place."""
        if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2:
            raise ValueError(f"step expects x_t of shape (batch, d_model), got {getattr(x_t, 'shape', x_t)}")
        y, state = self.forward(x_t[:, None], state=state, return_state=True)
        return y[:, 0], state
