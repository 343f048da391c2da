"""Mamba.step through the fused layer-step kernels (two Triton launches a layer).

Compiled on CUDA, interpreted on the CPU (``TRITON_INTERPRET=1``, as CI runs
them). The oracle is the same network's parallel forward in float64 through
the torch backend: another algorithm (a chunked scan over the whole
sequence, cuBLAS/ATen products) in another precision.
"""

from __future__ import annotations

import copy

import pytest
import torch

from sciamba.nn import Mamba
from sciamba.nn import _mamba_step

pytestmark = pytest.mark.triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # compiled, or interpreted on the CPU


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def _nets(rng, d_model: int, n_layers: int, **kw) -> tuple[Mamba, Mamba]:
    """A float32 Triton network with perturbed weights (biases, D and norms off their
    initial values, so every term shows) and its float64 torch-backend twin."""
    torch.manual_seed(int(rng.integers(2**31)))
    net = Mamba(d_model, n_layers, backend="triton", **kw).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p) * p.abs().mean().clamp_min(0.1))
    ref = copy.deepcopy(net).double()
    for blk in ref.blocks():
        blk.backend = "torch"
    return net.to(DEV), ref


@pytest.mark.parametrize(
    "d_model, n_layers, batch, L, kw",
    [
        (16, 2, 3, 9, {}),
        # odd widths, ranks and state sizes; biases on; a window longer than the sequence
        (7, 3, 5, 3, dict(d_state=5, d_conv=4, dt_rank=3, bias=True)),
        # E = 99: four channel tiles, the last partial; two row blocks (17 rows); no conv bias
        (33, 2, 17, 6, dict(d_state=3, d_conv=2, expand=3, conv_bias=False)),
        # a width-1 convolution (no window state), one layer
        (12, 1, 1, 5, dict(d_conv=1, d_state=1, dt_rank=1)),
    ],
)
def test_fused_step_equals_parallel_float64(rng, d_model, n_layers, batch, L, kw):
    net, ref = _nets(rng, d_model, n_layers, **kw)
    x = torch.randn(batch, L, d_model, dtype=torch.float64)
    with torch.no_grad():
        y_ref, s_ref = ref(x, return_state=True)
        state = net.allocate_state(batch)
        x32 = x.float().to(DEV)
        assert _mamba_step.fused_step_applies(net, x32[:, 0], None, state)
        ys = [net.step(x32[:, t], state)[0] for t in range(L)]
    assert _rel(torch.stack(ys, 1).cpu(), y_ref) < 1e-5
    for got, want in zip(state.layers, s_ref.layers):  # the states, updated in place
        assert _rel(got.ssm.cpu(), want.ssm) < 1e-5
        if got.conv.numel():
            assert _rel(got.conv.cpu(), want.conv) < 1e-5


def test_fused_step_continues_a_prefilled_state(rng):
    """From the state a parallel forward returns, as a stream continues a recording."""
    net, ref = _nets(rng, 20, 2, d_state=6)
    x = torch.randn(4, 13, 20, dtype=torch.float64)
    with torch.no_grad():
        y_ref = ref(x)
        _, state = net(x[:, :8].float().to(DEV), return_state=True)
        ys = [net.step(x[:, t].float().to(DEV), state)[0] for t in range(8, 13)]
    assert _rel(torch.stack(ys, 1).cpu(), y_ref[:, 8:]) < 1e-5


def test_fused_step_equals_layer_by_layer_step(rng, monkeypatch):
    """The fused step and the per-op step give the same outputs and states."""
    net, _ = _nets(rng, 24, 2, d_state=4, bias=True)
    x = torch.randn(6, 7, 24, device=DEV)
    with torch.no_grad():
        s1, s2 = net.allocate_state(6), net.allocate_state(6)
        y1 = torch.stack([net.step(x[:, t], s1)[0] for t in range(7)], 1)
        monkeypatch.setattr(_mamba_step, "fused_step_applies", lambda *a: False)
        monkeypatch.setattr("sciamba.nn._mamba.fused_step_applies", lambda *a: False)
        y2 = torch.stack([net.step(x[:, t], s2)[0] for t in range(7)], 1)
    assert _rel(y1, y2) < 1e-6
    for a, b in zip(s1.layers, s2.layers):
        assert _rel(a.ssm, b.ssm) < 1e-6 and _rel(a.conv, b.conv) < 1e-6


def test_fused_step_only_where_it_computes_the_same_thing(rng):
    """Float64 inputs or gaps, a recorded gradient, dropout in training and non-contiguous
    states take the layer-by-layer step."""
    net, _ = _nets(rng, 8, 1)
    x = torch.randn(2, 8, device=DEV)
    state = net.allocate_state(2)
    applies = _mamba_step.fused_step_applies
    with torch.no_grad():
        assert applies(net, x, None, state)
        assert applies(net, x, torch.ones(2, device=DEV), state)
        assert not applies(net, x, torch.ones(2, device=DEV, dtype=torch.float64), state)
        assert not applies(net, x.double(), None, state)
        strided = copy.deepcopy(state)
        strided.layers[0].ssm = strided.layers[0].ssm.transpose(1, 2).contiguous().transpose(1, 2)
        assert not applies(net, x, None, strided)
    assert not applies(net, x, None, state)  # grad mode on, parameters that require grad
    drop = Mamba(8, 1, dropout=0.1, backend="triton").to(DEV).train()
    with torch.no_grad():
        assert not applies(drop, x, None, drop.allocate_state(2))
        drop.eval()
        assert applies(drop, x, None, drop.allocate_state(2))
    torch_net = Mamba(8, 1, backend="torch").to(DEV).eval()
    with torch.no_grad():
        assert not applies(torch_net, x, None, torch_net.allocate_state(2))


@pytest.mark.parametrize("batch", [3, 11])
def test_fused_step_with_gaps_equals_parallel_float64(rng, batch):
    """Irregular time: gaps scale the step sizes; a zero gap is a padded step (left padding
    of unequal lengths), which keeps the state and outputs zero."""
    net, ref = _nets(rng, 16, 2, bias=True)
    L = 7
    x = torch.randn(batch, L, 16, dtype=torch.float64)
    gaps = torch.as_tensor(rng.uniform(0.2, 3.0, (batch, L)))
    for i in range(batch):  # left padding of a few rows, of different lengths
        gaps[i, : i % 4] = 0.0
    with torch.no_grad():
        y_ref = ref(x, gaps)
        state = net.allocate_state(batch)
        g32 = gaps.float().to(DEV)
        assert _mamba_step.fused_step_applies(net, x[:, 0].float().to(DEV), g32[:, 0], state)
        ys = [net.step(x[:, t].float().to(DEV), state, g32[:, t])[0] for t in range(L)]
    assert _rel(torch.stack(ys, 1).cpu(), y_ref) < 1e-5


def _unfused_step(net, x, state, monkeypatch):
    with monkeypatch.context() as mp:
        mp.setattr("sciamba.nn._mamba.fused_step_applies", lambda *a: False)
        return net.step(x, state)[0]


def test_replayed_steps_follow_changes_to_the_model(rng, monkeypatch):
    """A step's launches are bound once and replayed (``_mamba_step._Plan``); weights changed
    in place, parameters and submodules replaced and a norm's eps changed are all seen."""
    net, _ = _nets(rng, 20, 2, d_state=4, bias=True)
    x = torch.randn(3, 20, device=DEV)
    state = net.allocate_state(3)

    def check():
        twin = copy.deepcopy(state)
        with torch.no_grad():
            y = net.step(x, state)[0]
            y_ref = _unfused_step(net, x, twin, monkeypatch)
        assert _rel(y, y_ref) < 1e-6
        for a, b in zip(state.layers, twin.layers):
            assert _rel(a.ssm, b.ssm) < 1e-6

    for _ in range(3):
        check()
    assert len(_mamba_step._PLANS[net]) == 1
    with torch.no_grad():
        net.layers[0].mixer.in_proj.weight.mul_(1.5)  # in place: same addresses
    check()
    blk = net.layers[1].mixer
    blk.out_proj.weight = torch.nn.Parameter(torch.randn_like(blk.out_proj.weight) * 0.1)
    check()
    new = torch.nn.Linear(blk.x_proj.in_features, blk.x_proj.out_features, bias=False).to(DEV)
    blk.x_proj = new
    check()
    net.norm_f.eps = 0.5
    check()
    with torch.no_grad():  # a parameter moved to new memory under the same object
        net.layers[0].mixer.D.data = net.layers[0].mixer.D.data.clone() + 1.0
    check()


def test_replayed_steps_keep_each_state_apart(rng, monkeypatch):
    """Several streams of one model (more than the plans kept), stepped in turn."""
    net, _ = _nets(rng, 12, 2, d_state=3)
    states = [net.allocate_state(2) for _ in range(_mamba_step._PLANS_PER_MODEL + 2)]
    twins = copy.deepcopy(states)
    xs = torch.randn(3, len(states), 2, 12, device=DEV)
    with torch.no_grad():
        for t in range(3):
            for i, (s, s2) in enumerate(zip(states, twins)):
                y = net.step(xs[t, i], s)[0]
                assert _rel(y, _unfused_step(net, xs[t, i], s2, monkeypatch)) < 1e-6
    assert len(_mamba_step._PLANS[net]) == _mamba_step._PLANS_PER_MODEL
