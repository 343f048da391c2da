"""GraphedStep: Mamba.step replayed from a CUDA graph (eager off CUDA), against the parallel forward."""

import pytest
import torch
from torch import nn

from sciamba.nn import GraphedStep, Mamba, MambaBlock

CUDA = torch.cuda.is_available()


def _seed(rng):
    torch.manual_seed(int(rng.integers(2**31)))


def _gaps(rng, b, L, device="cpu"):
    g = rng.exponential(1.0, size=(b, L)) + 0.05
    g[rng.random((b, L)) < 0.15] = 0.0  # padded positions too
    return torch.as_tensor(g, dtype=torch.float32, device=device)


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("with_gaps", [False, True])
def test_prefill_then_steps_equal_one_forward(rng, with_gaps):
    _seed(rng)
    net = Mamba(12, 2, d_state=3).eval()
    b, L, split = 3, 17, int(rng.integers(1, 16))
    x = torch.randn(b, L, 12)
    g = _gaps(rng, b, L) if with_gaps else None
    streamer = GraphedStep(net, batch=b, gaps=with_gaps)
    assert not streamer.graphed  # CPU: eager steps
    y_ctx = streamer.prefill(x[:, :split], None if g is None else g[:, :split])
    ys = [streamer(x[:, t], None if g is None else g[:, t]) for t in range(split, L)]
    with torch.no_grad():
        ref = net(x, g)
    assert _rel(torch.cat([y_ctx, torch.stack(ys, 1)], 1), ref) < 1e-5


def test_reset_starts_a_new_stream_and_weights_are_read_live(rng):
    _seed(rng)
    net = Mamba(8, 1, d_state=4).eval()
    x = torch.randn(2, 6, 8)
    stream = GraphedStep(net, batch=2)
    first = torch.stack([stream(x[:, t]) for t in range(6)], 1)
    stream.reset()
    again = torch.stack([stream(x[:, t]) for t in range(6)], 1)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    other = Mamba(8, 1, d_state=4).eval()
    net.load_state_dict(other.state_dict())  # in place: the stepper sees the new weights
    stream.reset()
    with torch.no_grad():
        assert _rel(torch.stack([stream(x[:, t]) for t in range(6)], 1), other(x)) < 1e-5


def test_bad_use():
    net = Mamba(8, 1, d_state=4).eval()
    streamer = GraphedStep(net, batch=2)
    with pytest.raises(ValueError, match=r"shape \(batch, d_model\) = \(2, 8\)"):
        streamer(torch.randn(3, 8))
    with pytest.raises(ValueError, match="float64 on cpu but the model is torch.float32"):
        streamer(torch.randn(2, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="built without gaps"):
        streamer(torch.randn(2, 8), torch.ones(2))
    with_gaps = GraphedStep(net, batch=2, gaps=True)
    with pytest.raises(ValueError, match="gaps=True: pass gap"):
        with_gaps(torch.randn(2, 8))
    with pytest.raises(ValueError, match="finite and >= 0"):
        with_gaps(torch.randn(2, 8), torch.tensor([1.0, -1.0]))
    with pytest.raises(AttributeError):
        streamer.state = net.allocate_state(2)  # the graph writes into the stepper's own tensors
    with pytest.raises(ValueError, match="bidirectional"):
        GraphedStep(Mamba(8, 1, bidirectional=True).eval(), batch=2)
    with pytest.raises(ValueError, match="model.eval"):
        GraphedStep(Mamba(8, 1, dropout=0.1), batch=2)
    with pytest.raises(TypeError, match="sciamba.nn.Mamba"):
        GraphedStep(MambaBlock(8), batch=2)
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        GraphedStep(net, batch=0)


def test_inputs_that_require_grad_do_not_build_a_graph():
    net = Mamba(8, 1, d_state=4).eval()
    streamer = GraphedStep(net, batch=2)
    y = streamer(torch.randn(2, 8, requires_grad=True))
    assert not y.requires_grad and y.grad_fn is None


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("with_gaps", [False, True])
def test_replayed_graph_equals_eager_steps_on_gpu(rng, with_gaps):
    _seed(rng)
    net = Mamba(32, 2, d_state=8).cuda().eval()
    b, L, split = 4, 40, 9
    x = torch.randn(b, L, 32, device="cuda")
    g = _gaps(rng, b, L, "cuda") if with_gaps else None
    gs = (lambda t: None) if g is None else (lambda t: g[:, t])  # noqa: E731
    streamer = GraphedStep(net, batch=b, gaps=with_gaps)
    assert streamer.graphed
    state = net.allocate_state(b)
    with torch.no_grad():
        eager = torch.stack([net.step(x[:, t], state, gs(t))[0] for t in range(L)], 1)
        ref = net(x, g)
    # prefill, then replayed steps
    y_ctx = streamer.prefill(x[:, :split], None if g is None else g[:, :split])
    replayed = torch.stack([streamer(x[:, t], gs(t)) for t in range(split, L)], 1)
    torch.testing.assert_close(replayed, eager[:, split:], rtol=1e-5, atol=1e-5)
    assert _rel(torch.cat([y_ctx, replayed], 1), ref) < 1e-4
    for mine, theirs in zip(streamer.state.layers, state.layers):
        torch.testing.assert_close(mine.ssm, theirs.ssm, rtol=1e-5, atol=1e-5)
    # reset, and weights updated in place are read by the replays
    other = Mamba(32, 2, d_state=8).cuda().eval()
    net.load_state_dict(other.state_dict())
    streamer.reset()
    with torch.no_grad():
        again = torch.stack([streamer(x[:, t], gs(t)) for t in range(L)], 1)
        assert _rel(again, other(x, g)) < 1e-4
    net.half()  # parameters replaced: the captured graph would read freed memory
    with pytest.raises(RuntimeError, match="parameters were replaced"):
        streamer(x[:, 0].half(), gs(0))


def test_model_snapshot_tells_replaced_or_moved_parameters_from_in_place_updates():
    """The per-call guard of GraphedStep and of the fused step's bound launches."""
    from sciamba.nn._checks import ModelSnapshot

    net = Mamba(8, 2, d_state=4)
    snap = ModelSnapshot(net)
    assert snap.unchanged()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)  # an optimizer step: same memory
    net.load_state_dict(net.state_dict())
    assert snap.unchanged()
    blk = net.layers[1].mixer
    for change in (
        lambda: setattr(blk.out_proj, "weight", nn.Parameter(blk.out_proj.weight.detach().clone())),
        lambda: setattr(blk, "x_proj", nn.Linear(blk.x_proj.in_features, blk.x_proj.out_features, bias=False)),
        lambda: setattr(blk.D, "data", blk.D.data.clone()),
        lambda: setattr(blk.out_proj, "bias", nn.Parameter(torch.zeros(8))),  # was None
        lambda: net.double(),
    ):
        change()
        assert not snap.unchanged()
        snap = ModelSnapshot(net)
        assert snap.unchanged()
