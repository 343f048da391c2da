"""GraphedTrainStep: a training step replayed from a CUDA graph (eager off CUDA), against the eager loop."""

import copy

import pytest
import torch

from sciamba.nn import GraphedTrainStep, Mamba

CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA device")


def _net(rng, d=12, device="cpu", dropout=0.0):
    torch.manual_seed(int(rng.integers(2**31)))
    return torch.nn.Sequential(Mamba(d, 2, d_state=4, dropout=dropout), torch.nn.Linear(d, 3)).to(device)


def _adamw(net, capturable=False, lr=1e-2):
    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01, capturable=capturable)


def _eager(net, opt, x, y, autocast=None, max_grad_norm=None):
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
        loss = torch.nn.functional.mse_loss(net(x), y)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    opt.step()
    return loss.detach()


def _batches(rng, n, b, L, d, device="cpu"):
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return [(torch.randn(b, L, d, generator=g).to(device), torch.randn(b, L, 3, generator=g).to(device))
            for _ in range(n)]


def _max_rel(a, b):
    with torch.no_grad():
        return max(float((p - q).norm() / q.norm().clamp_min(1e-30)) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("max_grad_norm", [None, 0.05])
def test_cpu_calls_are_the_eager_loop(rng, max_grad_norm):
    net = _net(rng)
    ref, start = copy.deepcopy(net), copy.deepcopy(net)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net), max_grad_norm=max_grad_norm)
    opt_ref = _adamw(ref)
    for x, y in _batches(rng, 4, 2, 9, 12):
        loss = step(x, y)
        loss_ref = _eager(ref, opt_ref, x, y, max_grad_norm=max_grad_norm)
        assert torch.equal(loss, loss_ref)
    assert not step.graphed and step.steps == 4
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), ref.parameters()))
    assert _max_rel(net, start) > 1e-3  # it did train


def test_bad_arguments_are_refused(rng):
    net = _net(rng)
    opt = _adamw(net)
    mse = torch.nn.functional.mse_loss
    with pytest.raises(TypeError, match="torch.nn.Module"):
        GraphedTrainStep(lambda x: x, mse, opt)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        GraphedTrainStep(net, "mse", opt)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        GraphedTrainStep(net, mse, None)
    for dtype in (torch.int8, torch.float32, "bf16"):
        with pytest.raises(ValueError, match="autocast"):
            GraphedTrainStep(net, mse, opt, autocast=dtype)
    for bad in (0.0, -1.0, "1", float("nan")):
        with pytest.raises(ValueError, match="max_grad_norm"):
            GraphedTrainStep(net, mse, opt, max_grad_norm=bad)
    with pytest.raises(ValueError, match="warmup"):
        GraphedTrainStep(net, mse, opt, warmup=0)
    with pytest.raises(ValueError, match="no parameters"):
        GraphedTrainStep(torch.nn.ReLU(), mse, opt)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        GraphedTrainStep(net, mse, opt)([[0.0]], torch.zeros(1))


def test_every_call_takes_the_first_calls_batch_layout(rng):
    """As on CUDA, where the capture fixes the shapes: the same errors on any device."""
    net = _net(rng)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net))
    (x, y), = _batches(rng, 1, 2, 9, 12)
    step(x, y)
    with pytest.raises(ValueError, match=r"x is \(1, 9, 12\).*its first call's.*partial batch"):
        step(x[:1], y[:1])
    with pytest.raises(ValueError, match="target is"):
        step(x, y.double())
    assert step.steps == 1
    step(x, y)
    assert step.steps == 2


@cuda_only
def test_capturable_false_is_refused_on_cuda(rng):
    net = _net(rng, device="cuda")
    with pytest.raises(ValueError, match="capturable=True"):
        GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net, capturable=False))


@cuda_only
@pytest.mark.parametrize("max_grad_norm", [None, 0.05])
def test_replayed_steps_equal_the_eager_loop(rng, max_grad_norm):
    """float32: three eager warm-up calls, the capture, then replays, each against the eager loop."""
    net = _net(rng, d=16, device="cuda")
    ref = copy.deepcopy(net)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net, capturable=True),
                            max_grad_norm=max_grad_norm)
    opt_ref = _adamw(ref, capturable=True)
    for i, (x, y) in enumerate(_batches(rng, 7, 4, 33, 16, "cuda")):
        loss = step(x, y)
        loss_ref = _eager(ref, opt_ref, x, y, max_grad_norm=max_grad_norm)
        assert step.graphed == (i >= 3)
        torch.testing.assert_close(loss, loss_ref, rtol=1e-4, atol=1e-6)
    # the scan backward adds with atomics: not bitwise, but the same training
    assert _max_rel(net, ref) < 1e-4


@cuda_only
def test_replayed_bf16_autocast_training_follows_the_eager_loop(rng):
    net = _net(rng, d=16, device="cuda")
    ref = copy.deepcopy(net)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net, capturable=True),
                            autocast=torch.bfloat16)
    opt_ref = _adamw(ref, capturable=True)
    losses, refs = [], []
    for x, y in _batches(rng, 6, 4, 64, 16, "cuda"):
        losses.append(step(x, y))
        refs.append(_eager(ref, opt_ref, x, y, autocast=torch.bfloat16))
    assert step.graphed
    torch.testing.assert_close(torch.stack(losses), torch.stack(refs), rtol=2e-2, atol=1e-3)
    assert _max_rel(net, ref) < 1e-2


@cuda_only
def test_dropout_draws_new_masks_at_every_replay(rng):
    net = _net(rng, d=16, device="cuda", dropout=0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # no update: only the masks change the loss
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, opt, warmup=1)
    x, y = _batches(rng, 1, 4, 32, 16, "cuda")[0]
    losses = [float(step(x, y)) for _ in range(5)]
    assert step.graphed and len(set(losses[1:])) == 4


@cuda_only
def test_what_a_replay_cannot_follow_raises(rng):
    net = _net(rng, device="cuda")
    opt = _adamw(net, capturable=True)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, opt, warmup=1)
    (x, y), (x2, y2) = _batches(rng, 2, 2, 16, 12, "cuda")
    step(x, y)
    step(x, y)
    assert step.graphed
    with pytest.raises(ValueError, match="fixed shapes"):
        step(x[:1], y[:1])  # a last partial batch
    with pytest.raises(ValueError, match="fixed shapes"):
        step(x.double(), y)
    opt.param_groups[0]["lr"] = 1e-3  # a scheduler writing a float: invisible to the graph
    with pytest.raises(ValueError, match="hyperparameter"):
        step(x2, y2)
    opt.param_groups[0]["lr"] = 1e-2
    step(x2, y2)
    net.eval()
    with pytest.raises(ValueError, match="train and eval mode"):
        step(x2, y2)
    net.train()
    net[0].eval()  # one submodule only
    with pytest.raises(ValueError, match="train and eval mode"):
        step(x2, y2)
    net.train()
    state = copy.deepcopy(opt.state_dict())
    opt.load_state_dict(state)  # resuming from a checkpoint: new state tensors
    with pytest.raises(RuntimeError, match="optimizer's state was replaced"):
        step(x2, y2)
    net[1].weight = torch.nn.Parameter(net[1].weight.detach().clone())
    with pytest.raises(RuntimeError, match="parameters or buffers were replaced"):
        step(x2, y2)


@cuda_only
def test_a_failed_capture_leaves_the_stepper_usable(rng):
    net = _net(rng, device="cuda")
    fail = [True]

    def loss_fn(out, y):
        loss = torch.nn.functional.mse_loss(out, y)
        if fail[0] and torch.cuda.is_current_stream_capturing():
            float(loss.detach())  # reads a value: not allowed in a capture
        return loss

    step = GraphedTrainStep(net, loss_fn, _adamw(net, capturable=True), warmup=1)
    x, y = _batches(rng, 1, 2, 16, 12, "cuda")[0]
    step(x, y)
    with pytest.raises(RuntimeError):
        step(x, y)
    assert not step.graphed and step.steps == 1
    fail[0] = False
    step(x, y)
    assert step.graphed and step.steps == 2


@cuda_only
def test_a_tensor_learning_rate_can_be_scheduled(rng):
    net = _net(rng, device="cuda")
    lr = torch.tensor(1e-2, device="cuda")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, capturable=True)
    step = GraphedTrainStep(net, torch.nn.functional.mse_loss, opt, warmup=1)
    x, y = _batches(rng, 1, 2, 16, 12, "cuda")[0]
    for _ in range(3):
        step(x, y)
    assert step.graphed
    lr.fill_(0.0)  # in place: the graph reads it
    before = [p.detach().clone() for p in net.parameters()]
    step(x, y)
    opt_wd = opt.param_groups[0]["weight_decay"]
    assert opt_wd > 0 and all(torch.equal(p, q) for p, q in zip(net.parameters(), before))


@cuda_only
def test_a_deleted_stepper_gives_its_memory_back(rng):
    """Warm-ups and captures share one side stream: PyTorch keeps a cuBLAS workspace per
    stream ever used, so a fresh stream per call held tens of MB each after deletion."""
    import gc

    net = _net(rng, d=64, device="cuda")
    x, y = _batches(rng, 1, 4, 256, 64, "cuda")[0]

    def train_and_delete():
        step = GraphedTrainStep(net, torch.nn.functional.mse_loss, _adamw(net, capturable=True))
        for _ in range(5):
            step(x, y)
        assert step.graphed
        del step
        for p in net.parameters():
            p.grad = None
        gc.collect()
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()

    first = train_and_delete()  # creates the shared stream's workspace once
    assert train_and_delete() <= first + 2**20
