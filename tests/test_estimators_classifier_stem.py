"""MambaClassifier's convolutional input stems and pooled-feature dropout."""

import pickle

import numpy as np
import pytest
import torch
from scipy.special import erf

from sciamba.estimators import MambaClassifier
from sciamba.estimators._network import ConvStem, InceptionStem, MaskedBatchNorm, SeriesNetwork

TINY = dict(d_model=8, n_layers=1, d_state=4, expand=1, max_epochs=2, device="cpu", random_state=0)


def _same_correlation(x, K):
    """``x`` (B L C) correlated with ``K`` (D C k), "same" padding, as a plain loop -> (B L D).

    The extra zero of an even kernel goes right.
    """
    B, L, _ = x.shape
    D, _, k = K.shape
    left = (k - 1) // 2
    y = np.zeros((B, L, D))
    for bb in range(B):
        for t in range(L):
            for j in range(k):
                s = t - left + j
                if 0 <= s < L:
                    y[bb, t] += K[:, :, j] @ x[bb, s]
    return y


def _stem_reference(x, stem):
    """Plain-loop float64 ConvStem: linear, centred correlations + GELU, then the mix."""
    W, b = stem.linear.weight.detach().double().numpy(), stem.linear.bias.detach().double().numpy()
    parts = [x @ W.T + b]  # (B L D)
    for conv in stem.convs:
        y = _same_correlation(x, conv.weight.detach().double().numpy())
        y += conv.bias.detach().double().numpy()  # (D)
        parts.append(0.5 * y * (1.0 + erf(y / np.sqrt(2.0))))  # exact GELU
    Wm, bm = stem.mix.weight.detach().double().numpy(), stem.mix.bias.detach().double().numpy()
    return np.concatenate(parts, axis=-1) @ Wm.T + bm


@pytest.mark.parametrize("kernels", [(3, 9), (1, 4, 7)])
def test_conv_stem_matches_a_plain_loop(rng, kernels):
    B, L, C, D = 3, int(rng.integers(11, 30)), 2, 5
    torch.manual_seed(int(rng.integers(2**31)))
    stem = ConvStem(C, D, kernels).double()
    x = rng.standard_normal((B, L, C))
    got = stem(torch.from_numpy(x)).detach().numpy()
    assert got.shape == (B, L, D)
    np.testing.assert_allclose(got, _stem_reference(x, stem), rtol=1e-10, atol=1e-10)


def test_conv_stem_gradients():
    torch.manual_seed(0)
    stem = ConvStem(2, 3, (3, 4)).double()
    x = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(stem, (x,))


def test_head_dropout_acts_in_training_only(rng):
    kw = dict(backbone="mamba", d_model=6, n_layers=1, pooled=True, d_state=4, expand=1,
              bidirectional=True, causal=False)
    torch.manual_seed(int(rng.integers(2**31)))
    net = SeriesNetwork(1, 3, stem=(3,), head_dropout=0.5, **kw).double()
    plain = SeriesNetwork(1, 3, stem=(3,), **kw).double()
    plain.load_state_dict(net.state_dict())
    x = torch.from_numpy(rng.standard_normal((4, 17, 1)))
    gaps = torch.ones(4, 17, dtype=torch.float64)
    net.eval(), plain.eval()
    torch.testing.assert_close(net(x, gaps), plain(x, gaps), rtol=0, atol=0)
    # In training mode, the pooled features are dropped at rate 0.5: outputs differ.
    net.train()
    assert not torch.allclose(net(x, gaps), plain(x, gaps))


def test_stem_refuses_per_step_networks():
    with pytest.raises(ValueError, match="pooled"):
        SeriesNetwork(1, 1, backbone="mamba", d_model=4, n_layers=1, pooled=False, stem=(3,))


def _data(rng, n=24, L=20):
    t = np.linspace(0, 1, L)
    X = np.concatenate([np.sin(6 * t) + 0.3 * rng.standard_normal((n // 2, L)),
                        np.cos(6 * t) + 0.3 * rng.standard_normal((n // 2, L))])
    return X, np.repeat([0, 1], n // 2)


def test_classifier_embeddings_and_pickle(rng):
    X, y = _data(rng)
    clf = MambaClassifier(**TINY).fit(X, y)  # the defaults: inception stem (9, 19, 39)
    assert isinstance(clf.model_.embed, InceptionStem) and clf.model_.embed.kernels == (9, 19, 39)
    assert clf.model_.head_dropout is None
    # Batch-norm running statistics were learned and travel with the pickle.
    assert not torch.equal(clf.model_.embed.shortcut_norm.running_var, torch.ones(8))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    multi = MambaClassifier(**TINY, stem="multiscale").fit(X, y)
    assert isinstance(multi.model_.embed, ConvStem) and multi.model_.embed.kernels == (3, 9, 19)
    inc = MambaClassifier(**TINY, stem_kernels=[5, 11]).fit(X, y)
    assert isinstance(inc.model_.embed, InceptionStem) and inc.model_.embed.kernels == (5, 11)
    lin = MambaClassifier(**TINY, stem_kernels=None, head_dropout=0.25).fit(X, y)
    assert isinstance(lin.model_.embed, torch.nn.Linear) and lin.model_.head_dropout.p == 0.25
    again = pickle.loads(pickle.dumps(lin))
    np.testing.assert_array_equal(again.predict_proba(X), lin.predict_proba(X))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(stem_kernels=(3, 0)), "positive integer"),
        (dict(stem_kernels=(3, 2.5)), "positive integer"),
        (dict(stem_kernels="3,9"), "stem_kernels"),
        (dict(stem="resnet"), "stem"),
        (dict(d_model=3), "d_model >= 4"),
        (dict(head_dropout=1.0), "head_dropout"),
        (dict(head_dropout=-0.1), "head_dropout"),
    ],
)
def test_bad_stem_and_dropout_values(rng, params, match):
    X, y = _data(rng, n=8, L=10)
    with pytest.raises(ValueError, match=match):
        MambaClassifier(**{**TINY, **params}).fit(X, y)


# ----------------------------------------------------------------------------- inception stem
def _bn_reference(h, m, bn):
    """Batch norm of ``h`` (B L D) with the mean and biased variance of the observed rows."""
    obs = h[m]  # (n D)
    mu, var = obs.mean(axis=0), obs.var(axis=0)
    w, b = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    return (h - mu) / np.sqrt(var + bn.eps) * w + b, mu, obs.var(axis=0, ddof=1)


def _block_reference(x, m, block):
    B, L, _ = x.shape
    z = x if block.bottleneck is None else x @ block.bottleneck.weight.detach().double().numpy().T
    feats = []
    for conv in block.convs:
        feats.append(_same_correlation(z, conv.weight.detach().double().numpy()))
    pooled = np.zeros_like(x)
    for bb in range(B):
        for t in range(L):
            if m[bb, t]:
                near = [s for s in (t - 1, t, t + 1) if 0 <= s < L and m[bb, s]]
                pooled[bb, t] = x[bb, near].max(axis=0)
    feats.append(pooled @ block.pool_proj.weight.detach().double().numpy().T)
    return _bn_reference(np.concatenate(feats, axis=-1), m, block.norm)[0]


def _inception_reference(x, m, stem):
    h = x
    for i, block in enumerate(stem.blocks):
        h = _block_reference(h, m, block)
        if i < len(stem.blocks) - 1:
            h = np.maximum(h, 0.0) * m[..., None]
    short = _bn_reference(x @ stem.shortcut.weight.detach().double().numpy().T, m, stem.shortcut_norm)[0]
    return np.maximum(h + short, 0.0)


def _padded_batch(rng, B, L, C):
    """Series with leading padding of different lengths: values 0 and mask False there."""
    m = np.ones((B, L), dtype=bool)
    for bb in range(B):
        m[bb, : int(rng.integers(0, L // 3))] = False
    x = rng.standard_normal((B, L, C)) * m[..., None]
    return x, m


@pytest.mark.parametrize("n_in, kernels, depth", [(1, (3, 9, 4), 3), (3, (5, 2), 2)])
def test_inception_stem_matches_a_plain_loop(rng, n_in, kernels, depth):
    B, L, D = 3, int(rng.integers(12, 26)), 9
    torch.manual_seed(int(rng.integers(2**31)))
    stem = InceptionStem(n_in, D, kernels, depth=depth).double().train()
    for bn in [stem.shortcut_norm] + [blk.norm for blk in stem.blocks]:  # non-trivial affine maps
        torch.nn.init.normal_(bn.weight, 1.0, 0.3)
        torch.nn.init.normal_(bn.bias, 0.0, 0.3)
    assert (stem.blocks[0].bottleneck is None) == (n_in == 1)
    x, m = _padded_batch(rng, B, L, n_in)
    mask = torch.from_numpy(m[..., None].astype(np.float64))
    got = stem(torch.from_numpy(x), mask).detach().numpy()
    assert got.shape == (B, L, D)
    np.testing.assert_allclose(got, _inception_reference(x, m, stem), rtol=1e-9, atol=1e-10)


def test_inception_stem_gradients(rng):
    torch.manual_seed(0)
    stem = InceptionStem(2, 4, (3, 4), depth=2).double().train()
    x, m = _padded_batch(rng, 2, 9, 2)
    mask = torch.from_numpy(m[..., None].astype(np.float64))
    xt = torch.from_numpy(x).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: stem(v, mask), (xt,))


def test_masked_batch_norm_matches_batchnorm1d_and_observed_rows(rng):
    B, L, D = 4, int(rng.integers(7, 15)), 5
    h = rng.standard_normal((B, L, D)) * 2.0 + 1.0
    ours, ref = MaskedBatchNorm(D).double(), torch.nn.BatchNorm1d(D).double()
    full = torch.ones(B, L, 1, dtype=torch.float64)
    for _ in range(2):  # fully observed: exactly torch's batch norm, running statistics too
        got = ours(torch.from_numpy(h), full)
        want = ref(torch.from_numpy(h).transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(torch.from_numpy(h), full),
                               ref(torch.from_numpy(h).transpose(1, 2)).transpose(1, 2))
    # With padding: statistics of the observed rows only, whatever the padded values are.
    bn = MaskedBatchNorm(D).double()
    _, m = _padded_batch(rng, B, L, 1)
    h[~m] = 1e3
    got = bn(torch.from_numpy(h), torch.from_numpy(m[..., None].astype(np.float64))).detach().numpy()
    want, mu, var_unbiased = _bn_reference(h, m, bn)
    np.testing.assert_allclose(got[m], want[m], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var_unbiased, rtol=1e-12)


def test_inception_stem_ignores_left_padding(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    net = SeriesNetwork(1, 3, backbone="mamba", d_model=8, n_layers=1, pooled=True, d_state=4,
                        expand=1, bidirectional=True, causal=False, stem=(3, 5), stem_type="inception")
    net = net.double()
    for module in net.modules():  # learned-looking running statistics
        if isinstance(module, MaskedBatchNorm):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    L, pad = 11, 5
    x = torch.from_numpy(rng.standard_normal((2, L, 1)))
    g = torch.ones(2, L, dtype=torch.float64)
    xp = torch.cat([torch.zeros(2, pad, 1, dtype=torch.float64), x], dim=1)
    gp = torch.cat([torch.zeros(2, pad, dtype=torch.float64), g], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(x, g), net(xp, gp), rtol=1e-10, atol=1e-10)
        # Garbage at unobserved steps is masked out before the stem reads it.
        torch.testing.assert_close(net(xp + 5.0 * (gp == 0).unsqueeze(-1), gp), net(xp, gp),
                                   rtol=1e-10, atol=1e-10)


def test_inception_stem_bad_construction():
    with pytest.raises(ValueError, match="d_model >= 3"):
        InceptionStem(1, 2, (3, 5))
    with pytest.raises(ValueError, match="positive kernel"):
        InceptionStem(1, 8, (3, 0))
    with pytest.raises(ValueError, match="depth"):
        InceptionStem(1, 8, (3,), depth=0)
    with pytest.raises(ValueError, match="stem_type"):
        SeriesNetwork(1, 1, backbone="mamba", d_model=4, n_layers=1, pooled=True, stem=(3,),
                      stem_type="resnet")
