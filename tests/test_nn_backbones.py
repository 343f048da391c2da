"""Comparison backbones (S4D, Transformer, LSTM), the factory, RMSNorm, describe, the task generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sciamba import kernels

from sciamba.nn import (
    BACKBONES,
    LSTM,
    S4D,
    Mamba,
    RMSNorm,
    TransformerEncoder,
    describe,
    make_backbone,
    make_selective_copying,
)
from sciamba.nn._s4d import S4DKernel, S4DLayer
from sciamba.nn._transformer import sinusoidal_positions


def _seed(rng) -> None:
    torch.manual_seed(int(rng.integers(2**31)))


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ----------------------------------------------------------------------------- factory
@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_factory_interface(rng, name, bidirectional):
    _seed(rng)
    net = make_backbone(name, 16, 2, d_state=8, bidirectional=bidirectional)
    x = torch.randn(3, 11, 16)
    y = net(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert isinstance(net.supports_gaps, bool)
    assert net.supports_gaps == (name == "mamba")
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    # causality: a change at t >= 7 must not reach t < 7 unless the model looks ahead
    x2 = x.clone()
    x2[:, 7:] += torch.randn(3, 4, 16)  # not a constant shift, which LayerNorm would remove
    same_past = torch.allclose(net(x2)[:, :7], y[:, :7], atol=1e-6)
    assert same_past == (not bidirectional)
    if net.supports_gaps:
        assert net(x, torch.ones(3, 11)).shape == x.shape
    else:
        with pytest.raises(ValueError, match="supports_gaps is False"):
            net(x, torch.ones(3, 11))


def test_factory_options_and_errors():
    with pytest.raises(ValueError, match="'mamba', 's4d', 'transformer', 'lstm'"):
        make_backbone("gru", 8, 1)
    with pytest.raises(ValueError, match="d_model"):
        make_backbone("mamba", 0, 1)
    with pytest.raises(ValueError, match="n_layers"):
        make_backbone("lstm", 8, 0)
    assert make_backbone("MAMBA", 8, 1, d_conv=2).layers[0].mixer.d_conv == 2  # kwargs pass through
    assert make_backbone("mamba", 8, 1, expand=3).layers[0].mixer.d_inner == 24
    assert make_backbone("transformer", 8, 1, causal=False).causal is False
    assert make_backbone("transformer", 8, 1, bidirectional=True).causal is False
    assert make_backbone("transformer", 8, 1).causal is True
    assert make_backbone("s4d", 8, 1, d_state=6).layers[0].kernel.A_imag.shape == (8, 3)
    assert make_backbone("transformer", 16, 1, n_heads=2, positional="learned").pos_emb is not None


# ----------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_matches_torch_and_keeps_zero(rng):
    _seed(rng)
    norm = RMSNorm(9, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(4, 5, 9)
    assert _rel(norm(x), F.rms_norm(x, (9,), norm.weight, eps=1e-6)) < 1e-6
    assert torch.equal(norm(torch.zeros(2, 9)), torch.zeros(2, 9))
    assert norm(x.to(torch.bfloat16)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="last axis of size 9"):
        norm(torch.randn(2, 8))
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(3, eps=0)


# ----------------------------------------------------------------------------- Transformer
def _manual_transformer(net: TransformerEncoder, x: torch.Tensor) -> torch.Tensor:
    """Float64 softmax attention written out, for a comparison independent of SDPA."""
    f = lambda t: t.detach().double()  # noqa: E731
    b, L, d = x.shape
    H, hd = net.n_heads, d // net.n_heads
    h = x.double()
    if net.positional == "learned":
        h = h + f(net.pos_emb.weight[:L])
    elif net.positional == "sinusoidal":
        pos = np.arange(L)[:, None] / 10000 ** (np.arange(0, d, 2) / d)[None]
        pe = np.zeros((L, d))
        pe[:, 0::2], pe[:, 1::2] = np.sin(pos), np.cos(pos[:, : d // 2])
        h = h + torch.as_tensor(pe)
    for blk in net.layers:
        a = F.layer_norm(h, (d,), f(blk.norm1.weight), f(blk.norm1.bias))
        qkv = a @ f(blk.qkv.weight).T + f(blk.qkv.bias)
        q, k, v = (qkv[..., i * d : (i + 1) * d].reshape(b, L, H, hd).transpose(1, 2) for i in range(3))
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)  # (b H L L)
        if net.causal:
            s = s.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool), 1), -math.inf)
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, L, d)
        h = h + o @ f(blk.out.weight).T + f(blk.out.bias)
        m = F.layer_norm(h, (d,), f(blk.norm2.weight), f(blk.norm2.bias))
        h = h + F.gelu(m @ f(blk.ff1.weight).T + f(blk.ff1.bias)) @ f(blk.ff2.weight).T + f(blk.ff2.bias)
    return F.layer_norm(h, (d,), f(net.norm_f.weight), f(net.norm_f.bias))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_transformer_matches_manual_attention(rng, causal, positional):
    _seed(rng)
    net = TransformerEncoder(24, 2, n_heads=3, causal=causal, positional=positional, max_len=64)
    x = torch.randn(2, 13, 24)
    assert _rel(net(x), _manual_transformer(net, x)) < 1e-5


def test_sinusoidal_positions_closed_form():
    pe = sinusoidal_positions(torch.arange(7), 5).double()
    t = np.arange(7)[:, None]
    for i in range(5):
        w = 1 / 10000 ** ((i - i % 2) / 5)
        ref = np.sin(t * w) if i % 2 == 0 else np.cos(t * w)
        assert np.allclose(pe[:, i].numpy(), ref[:, 0], atol=1e-6)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_transformer_kv_cache_step_and_chunks(rng, positional):
    _seed(rng)
    net = TransformerEncoder(16, 2, n_heads=2, positional=positional, max_len=32).eval()
    x = torch.randn(2, 12, 16)
    with torch.no_grad():
        y = net(x)
        state = net.allocate_state(2, max_len=20)
        steps = [net.step(x[:, t], state)[0] for t in range(12)]
        assert state.length == 12
        assert _rel(torch.stack(steps, 1), y) < 1e-5
        y1, st = net(x[:, :5], return_state=True)
        y2, st = net(x[:, 5:], state=st, return_state=True)
        assert _rel(torch.cat([y1, y2], 1), y) < 1e-5


def test_transformer_errors():
    net = TransformerEncoder(16, 1, n_heads=2, positional="learned", max_len=8)
    with pytest.raises(ValueError, match="max_len=8"):
        net(torch.randn(1, 9, 16))
    state = net.allocate_state(1, max_len=3)
    with pytest.raises(ValueError, match="KV cache full"):
        net(torch.randn(1, 4, 16), state=state)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        TransformerEncoder(10, 1, n_heads=3)
    with pytest.raises(ValueError, match="positional"):
        TransformerEncoder(8, 1, positional="rope")
    with pytest.raises(ValueError, match="causal"):
        TransformerEncoder(8, 1, causal=False).allocate_state(1)
    with pytest.raises(ValueError, match=r"\(batch, L, d_model=16\)"):
        net(torch.randn(1, 4, 15))


# ----------------------------------------------------------------------------- S4D
def test_s4d_kernel_equals_recurrence(rng):
    """The FFT kernel is the impulse response of the ZOH recurrence h = Ā h + B̄ u, y = 2 Re(C h)."""
    _seed(rng)
    ker = S4DKernel(3, d_state=8, init="inv")
    with torch.no_grad():
        ker.log_dt.uniform_(math.log(0.01), math.log(0.5))
    L = 40
    K = ker(L).detach().double().numpy()  # (3 L)
    dt = np.exp(ker.log_dt.detach().double().numpy())
    A = -np.exp(ker.log_A_real.detach().double().numpy()) + 1j * ker.A_imag.detach().double().numpy()
    C = torch.view_as_complex(ker.C.detach().double()).numpy()
    for h in range(3):
        Ad = np.exp(dt[h] * A[h])
        Bd = (Ad - 1) / A[h]  # exact ZOH, B = 1
        state = np.zeros_like(Ad)
        for ell in range(L):
            state = Ad * state + Bd * (1.0 if ell == 0 else 0.0)
            assert abs(2 * (C[h] * state).sum().real - K[h, ell]) < 1e-5 * (1 + abs(K[h]).max())


def test_s4d_real_init_kernel(rng):
    _seed(rng)
    ker = S4DKernel(2, d_state=3, init="real")
    K = ker(5).double()
    dt = torch.exp(ker.log_dt.detach().double())[:, None]
    A = -torch.exp(ker.log_A_real.detach().double())
    C = ker.C.detach().double()
    ell = torch.arange(5, dtype=torch.float64)
    ref = torch.einsum("hn,hnl->hl", C * torch.expm1(dt * A) / A, torch.exp(dt[..., None] * A[..., None] * ell))
    assert _rel(K, ref) < 1e-5


def test_s4d_layer_equals_direct_convolution(rng):
    _seed(rng)
    layer = S4DLayer(4, d_state=6)
    x = torch.randn(2, 17, 4)
    K = layer.kernel(17).detach().double().numpy()
    u = x.double().numpy()
    conv = np.stack(
        [np.stack([np.convolve(u[b, :, h], K[h])[:17] for h in range(4)], -1) for b in range(2)]
    )  # (b L H)
    y = F.gelu(torch.as_tensor(conv) + layer.D.detach().double() * x.double())
    ref = F.glu(y @ layer.output_linear.weight.detach().double().T + layer.output_linear.bias.detach().double())
    assert _rel(layer(x), ref) < 1e-5


@pytest.mark.parametrize("cls", [Mamba, S4D, LSTM, TransformerEncoder])
@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_dropout_out_of_range(cls, dropout):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        cls(8, 1, dropout=dropout)


def test_s4d_errors():
    with pytest.raises(ValueError, match="init"):
        S4D(8, 1, init="legs")
    with pytest.raises(ValueError, match="dt_min"):
        S4DKernel(4, dt_min=1.0, dt_max=0.1)


# ----------------------------------------------------------------------------- LSTM
def test_lstm_wraps_torch_lstm(rng):
    _seed(rng)
    net = LSTM(6, 2)
    x = torch.randn(2, 9, 6)
    ref, _ = net.lstm(x)
    assert torch.equal(net(x), ref)
    bi = LSTM(6, 2, bidirectional=True)
    assert bi(x).shape == x.shape
    with pytest.raises(ValueError, match="dropout"):
        LSTM(6, 1, dropout=2.0)


# ----------------------------------------------------------------------------- describe
def _no_flop_scan(u, delta, A, B, C, D=None, z=None, *args, return_last_state=False, **kwargs):
    """Stand-in for the selective scan that does no matrix products (so only projections count)."""
    y = u * 1.0
    return (y, u.new_zeros(u.shape[0], u.shape[1], A.shape[1])) if return_last_state else y


@pytest.mark.parametrize(
    "make, L",
    [
        (lambda: Mamba(32, 2, d_state=8), 50),
        (lambda: Mamba(24, 1, d_state=4, bidirectional=True, d_conv=3), 20),
    ],
    ids=["mamba", "mamba-bi"],
)
def test_describe_mamba_matches_flop_counter(make, L, monkeypatch):
    model = make()
    d = describe(model, seq_len=L)
    assert d.n_params == sum(p.numel() for p in model.parameters())
    monkeypatch.setattr(kernels, "selective_scan", _no_flop_scan)
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, L, model.d_model))
    # The causal conv (torch path on the CPU) pads its input: exactly L outputs per block.
    assert d.matmul_flops_per_token * L == fc.get_total_flops()
    assert d.flops_per_token > d.matmul_flops_per_token
    text = str(d)
    assert "total" in text and f"{d.n_params:,}" in text and "[selective scan]" in text


@pytest.mark.parametrize("L", [7, 40])
def test_describe_transformer_matches_flop_counter(L):
    model = TransformerEncoder(32, 2, n_heads=4)
    d = describe(model, seq_len=L)
    assert d.n_params == sum(p.numel() for p in model.parameters())
    # The math backend of SDPA runs the two attention products as visible bmm's.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(torch.randn(1, L, 32))
    assert d.matmul_flops_per_token * L == fc.get_total_flops()


def test_describe_s4d_projections_match_flop_counter():
    model = S4D(16, 2, d_state=8)
    L = 30
    d = describe(model, seq_len=L)
    assert d.n_params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(1, L, 16))
    counts = fc.get_flop_counts()
    linear = sum(sum(counts[f"S4D.layers.{i}.output_linear"].values()) for i in range(2))
    assert d.rows["layers.output_linear"][1] * L == linear
    assert d.rows["layers [FFT conv]"][2] > 0


def test_describe_mamba_manual_count():
    d_model, N, E, k = 64, 16, 128, 4
    R = math.ceil(d_model / 16)
    d = describe(Mamba(d_model, 1, d_state=N))
    params = (
        d_model * 2 * E + E * k + E + E * (R + 2 * N) + R * E + E + E * N + E + E * d_model + 2 * d_model
    )
    assert d.n_params == params
    matmul = 2 * (d_model * 2 * E + E * k + E * (R + 2 * N) + R * E + E * d_model)
    assert d.matmul_flops_per_token == matmul
    # Mamba costs the same per token at any length; attention grows linearly
    assert describe(Mamba(64, 1), 128).flops_per_token == describe(Mamba(64, 1), 8192).flops_per_token
    t = TransformerEncoder(64, 1)
    assert describe(t, 8192).flops_per_token - describe(t, 128).flops_per_token == 4 * 64 * (8192 - 128) + 5 * (
        8192 - 128
    )


def test_describe_lstm_counts_gates():
    d = describe(LSTM(8, 2))
    assert d.n_params == sum(p.numel() for p in LSTM(8, 2).parameters())
    assert d.matmul_flops_per_token == 2 * (2 * 4 * 8 * (8 + 8))


def test_describe_errors():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        describe("mamba")
    with pytest.raises(ValueError, match="seq_len"):
        describe(Mamba(8, 1), seq_len=0)


# ----------------------------------------------------------------------------- task generator
def test_selective_copying_generator(rng):
    seed = int(rng.integers(2**31))
    X, y = make_selective_copying(50, seq_len=30, n_tokens=5, vocab_size=6, random_state=seed)
    assert X.shape == (50, 35) and y.shape == (50, 5)
    assert X.dtype == np.int64 and y.dtype == np.int64
    body = X[:, :30]
    assert np.all(X[:, 30:] == 7)  # markers
    assert np.all(np.isin(body, np.arange(7)))
    for i in range(50):
        data = body[i][body[i] != 6]
        assert len(data) == 5 and np.array_equal(data, y[i])
    X2, y2 = make_selective_copying(50, seq_len=30, n_tokens=5, vocab_size=6, random_state=seed)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    # positions uniform over the body, tokens uniform over the vocabulary
    X, y = make_selective_copying(4000, seq_len=20, n_tokens=2, vocab_size=4, random_state=rng)
    freq = (X[:, :20] != 4).mean(0)
    assert np.allclose(freq, 2 / 20, atol=0.02)
    assert np.allclose(np.bincount(y.ravel(), minlength=4) / y.size, 0.25, atol=0.02)


def test_selective_copying_errors():
    with pytest.raises(ValueError, match="n_tokens"):
        make_selective_copying(2, seq_len=3, n_tokens=4)
    with pytest.raises(ValueError, match="n_samples"):
        make_selective_copying(0)
    with pytest.raises(ValueError, match="vocab_size"):
        make_selective_copying(2, vocab_size=1.5)
